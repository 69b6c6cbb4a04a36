"""The pipe between tokintd and its llama.cpp worker: length-prefixed msgpack maps.

A frame is a 4-byte big-endian length and a msgpack map (``raw=False``, no extension types).
Both ends are ours, but the limit still holds so that a confused peer cannot make the other
allocate without bound.

Supervisor -> worker (``op``):
    {"op": "generate", "job": id, "pair": name, "request": GenerationRequest wire}
    {"op": "cancel", "job": id, "reason": "cancelled" | "shutdown"}
    {"op": "load", "job": id, "pair": name}        -> "loaded" reply (or "error")
    {"op": "unload", "job": id, "pair": name}      -> "unloaded" reply
    {"op": "exit"}
Worker -> supervisor (``type``, with ``job`` when it answers one):
    "ready" (pid, versions), "loading", "started", "token", "summary", "error" (code, message),
    "loaded" (LoadedModels of the pair), "unloaded" (was_loaded)
"""
from __future__ import annotations

import asyncio
import os
import struct
import time
from typing import Any, Optional

import msgpack

MAX_FRAME_BYTES = 64 << 20
_HEADER = struct.Struct(">I")


class ChannelClosed(Exception):
    """The other end of the pipe is gone (EOF) or sent something that is not a frame."""


def pack(message: dict[str, Any]) -> bytes:
    body = msgpack.packb(message, use_bin_type=True)
    return _HEADER.pack(len(body)) + body


def unpack(body: bytes) -> dict[str, Any]:
    message = msgpack.unpackb(body, raw=False, strict_map_key=True, ext_hook=_no_ext)
    if not isinstance(message, dict):
        raise ChannelClosed("a frame that is not a map")
    return message


def _no_ext(code: int, data: bytes) -> Any:
    raise ChannelClosed(f"a frame with msgpack extension type {code}")


def _length(header: bytes) -> int:
    (n,) = _HEADER.unpack(header)
    if n > MAX_FRAME_BYTES:
        raise ChannelClosed(f"a frame of {n} bytes exceeds the limit of {MAX_FRAME_BYTES}")
    return n


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any]:
    """The next message from an asyncio stream; ChannelClosed at EOF."""
    try:
        n = _length(await reader.readexactly(_HEADER.size))
        return unpack(await reader.readexactly(n))
    except asyncio.IncompleteReadError:
        raise ChannelClosed("end of stream") from None


def read_frame_fd(fd: int) -> dict[str, Any]:
    """The next message from a blocking file descriptor; ChannelClosed at EOF."""
    return unpack(_read_exactly(fd, _length(_read_exactly(fd, _HEADER.size))))


def _read_exactly(fd: int, n: int) -> bytes:
    parts: list[bytes] = []
    left = n
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            raise ChannelClosed("end of stream")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def write_frame_fd(fd: int, message: dict[str, Any]) -> None:
    """Write one message to a blocking file descriptor (the whole frame, retrying short writes)."""
    view = memoryview(pack(message))
    while view:
        view = view[os.write(fd, view):]


def job_message(kind: str, job: Optional[str], content: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """A worker -> supervisor message; ``at`` is when it was sent (CLOCK_MONOTONIC, shared by every
    process on the machine), so the supervisor can measure the hop."""
    return {"type": kind, "job": job, "content": content or {}, "at": time.monotonic()}
