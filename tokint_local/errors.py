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
