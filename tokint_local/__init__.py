"""tokint: a base model writes, a reasoning model takes over the few tokens where they disagree.

The client classes load lazily, so ``import tokint_local`` stays light.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Client": "tokint_local.client",
    "AsyncClient": "tokint_local.client",
    "GenerationRequest": "tokint_local.events",
    "ChatMessage": "tokint_local.events",
    "Conversation": "tokint_local.conversation",
    "Turn": "tokint_local.conversation",
    "TokenEvent": "tokint_local.events",
    "Summary": "tokint_local.events",
    "TokintError": "tokint_local.errors",
    "DaemonUnavailable": "tokint_local.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tokint_local' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
