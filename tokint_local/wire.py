"""The wire envelope of the tokintd protocol: message <-> list of frames.

A message is two msgpack frames, a header and a content map:

    header  = {"id": str, "type": str, "version": int, "parent": str | None}
    content = {...}   # depends on "type"

``parent`` is the id of the request a reply or streamed event answers. msgpack is decoded with
``raw=False``, strict size limits and no extension types (msgpack's own timestamp included: a
message holding one is ``malformed``): nothing but plain data ever comes off the wire. See
docs/PROTOCOL.md for the contract.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

import msgpack

from .errors import InvalidParameter, TokintError

PROTOCOL_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)  # a message is answered in the version it was sent in
MAX_MESSAGE_BYTES = 1 << 20  # 1 MiB: a larger request gets a "too_large" error
MAX_FRAME_BYTES_HARD = 16 << 20  # ZeroMQ drops a peer sending more than this (ZMQ_MAXMSGSIZE)
HEARTBEAT_INTERVAL_S = 0.5  # clients with requests in flight send a heartbeat this often
# A client silent this long has its generations cancelled. Ten intervals, not three: at 1.5 s a live client
# whose threads a loaded 2-core machine held back lost a running generation (CI, 8 clients x 25 streams).
# Clients that close or drop a stream cancel it at once; only a killed or hung one waits this long.
HEARTBEAT_TIMEOUT_S = 5.0

REQUEST_TYPES = (
    "hello", "status", "list_pairs", "load_pair", "unload_pair", "generate", "cancel", "shutdown", "heartbeat",
)


class ProtocolError(TokintError):
    """A message that cannot be understood. ``code`` is the wire error code."""

    def __init__(self, code: str, message: str, parent: Optional[str] = None):
        super().__init__(message)
        self.code = code
        self.parent = parent


@dataclass(frozen=True)
class Message:
    type: str
    content: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    parent: Optional[str] = None
    version: int = PROTOCOL_VERSION

    def to_frames(self) -> list[bytes]:
        header = {"id": self.id, "type": self.type, "version": self.version, "parent": self.parent}
        try:
            return [_pack(header), _pack(self.content)]
        except UnicodeEncodeError as exc:  # a lone surrogate: a str that is not text cannot go on the wire
            bad = exc.object[exc.start : exc.end]
            raise InvalidParameter(f"{self.type}: a string that is not valid text ({exc.reason}: {bad!r})") from None

    @classmethod
    def from_frames(cls, frames: list[bytes]) -> "Message":
        """Decode and check a message; ProtocolError (with the request id when known) if it is bad."""
        size = sum(len(f) for f in frames)
        if size > MAX_MESSAGE_BYTES:
            parent = _peek_id(frames[0]) if frames else None
            raise ProtocolError("too_large", f"message of {size} bytes exceeds the limit of {MAX_MESSAGE_BYTES}", parent)
        if len(frames) != 2:
            raise ProtocolError("malformed", f"a message is 2 frames (header, content), not {len(frames)}")
        header = _unpack(frames[0], "header")
        if not isinstance(header, dict):
            raise ProtocolError("malformed", "the header must be a map")
        msg_id = header.get("id")
        if not isinstance(msg_id, str) or not 0 < len(msg_id) <= 128:
            raise ProtocolError("malformed", "header.id must be a string of 1 to 128 characters")
        mtype = header.get("type")
        if not isinstance(mtype, str):
            raise ProtocolError("malformed", "header.type must be a string", msg_id)
        version = header.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ProtocolError("malformed", "header.version must be an integer", msg_id)
        if version not in SUPPORTED_VERSIONS:
            speaks = " and ".join(str(v) for v in SUPPORTED_VERSIONS)
            raise ProtocolError(
                "unsupported_version", f"protocol version {version} is not supported (this side speaks {speaks})", msg_id
            )
        parent = header.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise ProtocolError("malformed", "header.parent must be a string or null", msg_id)
        content = _unpack(frames[1], "content", msg_id)
        if not isinstance(content, dict):
            raise ProtocolError("malformed", "the content must be a map", msg_id)
        return cls(type=mtype, content=content, id=msg_id, parent=parent, version=version)


def error_message(code: str, message: str, parent: Optional[str]) -> Message:
    return Message("error", {"code": code, "message": message}, parent=parent)


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not allowed")


def _unpack(frame: bytes, what: str, parent: Optional[str] = None) -> Any:
    try:
        return msgpack.unpackb(
            frame,
            raw=False,
            strict_map_key=True,
            ext_hook=_refuse_ext,
            max_ext_len=0,  # every extension type refused while decoding, the built-in timestamp (-1) too
            max_str_len=MAX_MESSAGE_BYTES,
            max_bin_len=MAX_MESSAGE_BYTES,
            max_array_len=100_000,
            max_map_len=10_000,
        )
    except (ValueError, msgpack.UnpackException) as exc:  # every msgpack decoding error is one of these
        raise ProtocolError("malformed", f"the {what} frame is not valid msgpack ({type(exc).__name__})", parent) from None


def peek_version(frames: list[bytes]) -> Optional[int]:
    """The supported protocol version a (possibly bad) message's header names, if it can be read: its error
    is answered in that version."""
    try:
        header = _unpack(frames[0], "header") if frames and len(frames[0]) <= MAX_MESSAGE_BYTES else None
    except ProtocolError:
        return None
    version = header.get("version") if isinstance(header, dict) else None
    return version if version in SUPPORTED_VERSIONS and not isinstance(version, bool) else None


def _peek_id(frame: bytes) -> Optional[str]:
    try:
        header = _unpack(frame, "header")
    except ProtocolError:
        return None
    if isinstance(header, dict) and isinstance(header.get("id"), str):
        return header["id"]
    return None
