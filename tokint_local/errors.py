"""The one error family of tokint: every library error derives from TokintError.

Each class carries a stable ``code`` that the CLI, the daemon and the wire protocol share, so a
program can tell errors apart without parsing messages.
"""
from __future__ import annotations


class TokintError(Exception):
    """Base of every error tokint raises on purpose. The message is meant for a person."""

    code = "error"


class InvalidParameter(TokintError):
    code = "invalid_parameter"


class ConfigError(TokintError):
    code = "config_error"


class UnknownPair(TokintError):
    code = "unknown_pair"


class ModelFileMissing(TokintError):
    code = "model_missing"


class ModelLoadError(TokintError):
    code = "model_load_failed"


class IncompatiblePair(TokintError):
    code = "incompatible_pair"


class PromptTooLong(TokintError):
    code = "prompt_too_long"


class BackendError(TokintError):
    code = "backend_error"


class BackendCrashed(TokintError):
    """The daemon's llama.cpp worker died (abort, segfault, killed) while serving the request."""

    code = "backend_crashed"


class TemplateError(TokintError):
    """A model's chat template failed to render the prompt (the message says how)."""

    code = "template_error"


class DaemonUnavailable(TokintError):
    """Nothing answered at the daemon's address, or it stopped answering."""

    code = "daemon_unavailable"


class DaemonError(TokintError):
    """An error the daemon reported whose code has no class of its own here."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


_BY_CODE = {cls.code: cls for cls in (
    InvalidParameter, ConfigError, UnknownPair, ModelFileMissing, ModelLoadError, IncompatiblePair, PromptTooLong,
    BackendError, BackendCrashed, TemplateError,
)}


def error_from_code(code: str, message: str) -> TokintError:
    """The exception a client raises for an error the daemon sent."""
    cls = _BY_CODE.get(code)
    return cls(message) if cls is not None else DaemonError(code, message)
