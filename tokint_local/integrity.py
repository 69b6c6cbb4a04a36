"""Whether a model file on disk is whole, and a record of the files already found so.

A file is damaged when its size differs from the one it must have (the hub's, remembered when it
was pulled), when its GGUF tensor data runs past its end, or when its SHA-256 differs from the
pinned one. Hashing a model takes seconds, so a file's digest is remembered with its size and
mtime in ``$TOKINT_HOME/verified-files.json`` and computed again only when either changes.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from .config import tokint_home

RECORD_NAME = "verified-files.json"


def record_path() -> Path:
    return tokint_home() / RECORD_NAME


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _load() -> dict[str, dict[str, Any]]:
    try:
        record = json.loads(record_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: files are hashed again, nothing worse
    return record if isinstance(record, dict) else {}


def _save(record: dict[str, dict[str, Any]]) -> None:
    path = record_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".verified-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, sort_keys=True)
        os.replace(tmp, path)  # a reader sees the old record or the new one, never half of one
    except OSError:
        pass  # a read-only home only costs hashing again next time


def _key(path: Path) -> str:
    return os.path.realpath(path)  # a hub snapshot is a link to its blob: the blob is what is checked


def entry(path: Path) -> dict[str, Any]:
    """What the record holds about ``path`` (empty when nothing)."""
    found = _load().get(_key(path))
    return found if isinstance(found, dict) else {}


def remember(path: Path, *, sha256: Optional[str] = None, expected_size: Optional[int] = None) -> None:
    """Record ``path``'s digest (as of its current size and mtime) and the size it must have.

    ``expected_size`` belongs to content-addressed files only (hub blobs), whose right size never changes.
    """
    st = path.stat()
    record = _load()
    key = _key(path)
    now = dict(record.get(key) or {})
    if sha256 is not None:
        now.update(size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=sha256)
    if expected_size is not None:
        now["expected_size"] = expected_size
    if now != record.get(key):
        record = {k: v for k, v in record.items() if os.path.exists(k)}  # files deleted since: forgotten
        record[key] = now
        _save(record)


def forget(path: Path) -> None:
    record = _load()
    if record.pop(_key(path), None) is not None:
        _save(record)


def known_sha256(path: Path) -> Optional[str]:
    """The recorded digest if the file has not changed since (same size and mtime), else None."""
    st = path.stat()
    found = entry(path)
    if found.get("size") == st.st_size and found.get("mtime_ns") == st.st_mtime_ns:
        return found.get("sha256")
    return None


def sha256_checked(path: Path, say: Callable[[str], None] = lambda _: None, expected_size: Optional[int] = None,
                   label: Optional[str] = None) -> str:
    """The file's SHA-256: the recorded one while the file is unchanged, else computed and recorded
    (saying so, as ``label``: hashing a model takes a while)."""
    digest = known_sha256(path)
    if digest is None:
        say(f"checking {label or path.name} ({path.stat().st_size / 2**20:.1f} MiB, sha256)")
        digest = sha256_of(path)
        remember(path, sha256=digest, expected_size=expected_size)
    return digest


_REQUIRED: dict[tuple[str, int, int], Optional[int]] = {}  # the header parsed once per file version


def size_problem(path: Path, expected_size: Optional[int] = None) -> Optional[str]:
    """Why the file's size is wrong, or None: against ``expected_size`` (or the recorded one), then
    against what its GGUF header says its tensors need. Reads no weights."""
    from .gguf_meta import required_size

    st = path.stat()
    size = st.st_size
    expected = expected_size if expected_size is not None else entry(path).get("expected_size")
    if expected is not None and size != expected:
        return f"{size:,} bytes where the whole file has {expected:,}"
    version = (_key(path), size, st.st_mtime_ns)
    if version not in _REQUIRED:
        _REQUIRED[version] = required_size(path)
    needed = _REQUIRED[version]
    if needed is not None and size < needed:
        return f"cut short: {size:,} bytes where its GGUF header needs at least {needed:,}"
    return None


def problem(path: Path, *, expected_size: Optional[int] = None, sha256: Iterable[str] = (),
            say: Callable[[str], None] = lambda _: None, label: Optional[str] = None) -> Optional[str]:
    """Why a model file is damaged, or None: its size first (cheap), then its digest (hashed only
    when the record cannot vouch for it) against each of ``sha256``."""
    wrong_size = size_problem(path, expected_size)
    if wrong_size is not None:
        return wrong_size
    wanted = [h for h in sha256 if h]
    if wanted:
        digest = sha256_checked(path, say, expected_size, label)
        if any(h != digest for h in wanted):
            return f"sha256 {digest} where {wanted[0]} is expected"
    if expected_size is not None:
        remember(path, expected_size=expected_size)
    return None
