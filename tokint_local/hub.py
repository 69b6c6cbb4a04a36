"""Getting model files from the Hugging Face hub (``tokint pull``), as ``ollama pull`` does.

Files land in huggingface_hub's own cache layout (``blobs/<etag>``, ``snapshots/<commit>/<file>``,
``refs/<revision>``), so other tools see them and ``try_to_load_from_cache`` finds them. The
download itself is tokint's: it writes ``blobs/<etag>.tokint-partial`` and resumes from it with an
HTTP Range request, in the same pull after a dropped connection and in the next pull after a killed
one (huggingface_hub 2.x starts every attempt in a fresh temporary file). A file is linked into
place only once it is whole and its SHA-256 matches: the hub's own (an LFS file's ETag is its
SHA-256) and, when models.toml pins one, that one. A file already in the cache is checked the same
way on every pull (its digest is remembered, see integrity.py) and fetched again when damaged.
``HF_TOKEN`` is used for gated repos, ``HF_ENDPOINT`` picks the hub, ``HF_HUB_OFFLINE=1`` uses
the cache only.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Callable

from . import integrity
from .config import ModelEntry, PairEntry
from .errors import TokintError
from .integrity import sha256_of

RETRIES = 5  # dropped connections resumed within one pull before giving up
READ_TIMEOUT_S = 30.0


class PullError(TokintError):
    code = "pull_failed"


class ChecksumMismatch(TokintError):
    code = "checksum_mismatch"


def _hashes(*candidates: str | None) -> list[str]:
    """The SHA-256 values among ``candidates`` (an ETag may be a git hash instead), once each."""
    return list(dict.fromkeys(h for h in candidates if h and re.fullmatch(r"[0-9a-f]{64}", h)))


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _progress(desc: str, total: int, initial: int):
    """huggingface_hub's progress bar, shown on stderr even when it is not a terminal (logs, CI)."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    disabled = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "").lower() in ("1", "true", "yes")
    return hf_tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                   disable=disabled, mininterval=0.5)


def pull_model(entry: ModelEntry, say: Callable[[str], None] = lambda _: None) -> Path:
    """Make sure the model's file is on disk and whole (downloading it, again if the cached copy is
    damaged, when it is on the hub) and return it."""
    if entry.path is not None:
        if not entry.path.is_file():
            raise PullError(f"{entry.role} model is a local file that does not exist: {entry.path}")
        damage = integrity.problem(entry.path, sha256=_hashes(entry.sha256), say=say, label=str(entry.path))
        if damage:
            raise PullError(f"{entry.role} model {entry.path} is damaged ({damage}); it is a local file: replace it")
        return entry.path
    source = f"{entry.hf_repo}:{entry.file}" + (f"@{entry.revision}" if entry.revision else "")
    if _offline():
        cached = entry.cached_path()
        if cached is None:
            raise PullError(f"{source}: HF_HUB_OFFLINE is set and the file is not in the cache")
        damage = integrity.problem(cached, sha256=_hashes(entry.sha256, Path(os.path.realpath(cached)).name), say=say,
                                   label=source)
        if damage:
            raise PullError(f"{source}: the cached file is damaged ({damage}) and HF_HUB_OFFLINE is set; "
                            "pull it online, or with --from DIR")
        return cached
    meta = _metadata(entry, source)
    repo_dir = _repo_dir(entry.hf_repo)
    etag = meta.etag or ""
    if entry.sha256 and re.fullmatch(r"[0-9a-f]{64}", etag) and etag != entry.sha256:
        raise ChecksumMismatch(
            f"{source}: the hub's file has sha256 {etag} but models.toml pins {entry.sha256}; nothing was downloaded. "
            "Pin the revision that has the file you want, or update sha256"
        )
    blob = repo_dir / "blobs" / etag
    expected = _hashes(entry.sha256, etag)
    damage = integrity.problem(blob, expected_size=meta.size, sha256=expected, say=say, label=source) if blob.is_file() else None
    if damage:
        say(f"{entry.role} model {source}: the cached file is damaged ({damage}); downloading it again")
        resumed = _set_aside(blob, meta.size)
        try:
            digest = _download(meta, blob, source, expected)
        except ChecksumMismatch:
            if not resumed:
                raise
            say(f"{entry.role} model {source}: the part kept was damaged too; downloading the whole file")
            digest = _download(meta, blob, source, expected)
        integrity.remember(blob, sha256=digest, expected_size=meta.size)
        say(f"{entry.role} model {source}: repaired")
    elif not blob.is_file():
        say(f"pulling {entry.role} model {source} ({_size(meta.size)})")
        integrity.remember(blob, sha256=_download(meta, blob, source, expected), expected_size=meta.size)
    snapshot = repo_dir / "snapshots" / meta.commit_hash / entry.file
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    if snapshot.is_symlink() or snapshot.exists():
        snapshot.unlink()
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    revision = entry.revision or "main"
    if not re.fullmatch(r"[0-9a-f]{40}", revision):
        ref = repo_dir / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(meta.commit_hash)
    return snapshot


def _size(n) -> str:
    return f"{n / 2**20:.1f} MiB" if n else "size unknown"


def _repo_dir(repo: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"


def _metadata(entry: ModelEntry, source: str):
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        meta = get_hf_file_metadata(hf_hub_url(entry.hf_repo, entry.file, revision=entry.revision),
                                    token=os.environ.get("HF_TOKEN") or None)
    except hf_errors.GatedRepoError:
        raise PullError(f"{source}: the repository is gated; accept its terms on the hub and set HF_TOKEN") from None
    except hf_errors.RepositoryNotFoundError:
        raise PullError(f"{source}: no such repository on the hub (or it is private: set HF_TOKEN)") from None
    except hf_errors.RevisionNotFoundError:
        raise PullError(f"{source}: no revision {entry.revision!r} in {entry.hf_repo}") from None
    except hf_errors.EntryNotFoundError:
        raise PullError(f"{source}: the repository has no file {entry.file!r}") from None
    except Exception as exc:  # connection refused, DNS, TLS, HTTP 5xx: the hub could not be asked
        raise PullError(f"{source}: the hub could not be reached ({type(exc).__name__}: {exc})") from None
    if not meta.commit_hash or not meta.etag:
        raise PullError(f"{source}: the hub's answer lacks the commit or ETag of the file")
    return meta


def _set_aside(blob: Path, size: int | None) -> bool:
    """Take a damaged blob out of the way; one shorter than the hub's file becomes the partial
    download to resume from (most likely a good start; the digest checks it at the end)."""
    integrity.forget(blob)
    if size is not None and blob.stat().st_size < size:
        os.replace(blob, blob.with_name(blob.name + ".tokint-partial"))
        return True
    blob.unlink()
    return False


def _download(meta, blob: Path, source: str, expected: list[str]) -> str | None:
    """Fetch ``meta.location`` into ``blob``, resuming a partial file, verifying before linking.

    Returns the file's SHA-256 when it was computed (some hash was expected), else None.
    """
    from filelock import FileLock
    from huggingface_hub.utils import build_hf_headers, get_session

    blob.parent.mkdir(parents=True, exist_ok=True)
    partial = blob.with_name(blob.name + ".tokint-partial")
    with FileLock(str(partial) + ".lock"):
        if blob.is_file():  # another pull finished it meanwhile
            return None
        for attempt in range(RETRIES + 1):
            have = partial.stat().st_size if partial.exists() else 0
            if meta.size is not None and have >= meta.size:
                break
            headers = build_hf_headers(token=os.environ.get("HF_TOKEN") or None)
            if have:
                headers["Range"] = f"bytes={have}-"
            try:
                with get_session().stream("GET", meta.location, headers=headers, follow_redirects=True,
                                          timeout=READ_TIMEOUT_S) as response:
                    if response.status_code == 200 and have:
                        have = 0  # the server ignored the range: start over
                    elif response.status_code not in (200, 206):
                        raise PullError(f"{source}: the hub answered HTTP {response.status_code} to the download")
                    with open(partial, "ab" if have else "wb") as f, _progress(source, meta.size or 0, have) as bar:
                        for chunk in response.iter_bytes():
                            f.write(chunk)
                            bar.update(len(chunk))
                break
            except PullError:
                raise
            except Exception as exc:  # a dropped connection: go on from what is on disk
                if attempt == RETRIES:
                    raise PullError(f"{source}: download failed ({type(exc).__name__}: {exc}); "
                                    "run the pull again to resume") from None
                time.sleep(min(2**attempt * 0.2, 5))
        got = partial.stat().st_size
        if meta.size is not None and got != meta.size:
            raise PullError(f"{source}: got {got} of {meta.size} bytes; run the pull again to resume")
        actual = None
        if expected:
            actual = sha256_of(partial)
            if any(h != actual for h in expected):
                partial.unlink()
                raise ChecksumMismatch(
                    f"{source}: checksum mismatch (expected sha256 {expected[0]}, got {actual}); the file was deleted. "
                    "Pull again; if it persists, the file on the hub is not the one pinned in models.toml"
                )
        os.replace(partial, blob)
        return actual


LOCAL_COMMIT = "0" * 40  # the snapshot of files imported from a folder (no hub commit is known)


def import_model(entry: ModelEntry, folder: Path, say: Callable[[str], None] = lambda _: None) -> Path:
    """Put ``folder/<file>`` into the hub cache as ``entry``'s file, for machines without the hub.

    The file must match ``sha256`` when models.toml pins one. It is stored under its SHA-256 (what
    the hub uses as an LFS file's ETag), so a later online pull finds it and downloads nothing.
    """
    if entry.path is not None:
        return pull_model(entry, say)
    source_file = folder / entry.file
    source = f"{entry.hf_repo}:{entry.file}"
    cached = entry.cached_path()
    damage, held = None, None
    if cached is not None:
        held = Path(os.path.realpath(cached))
        damage = integrity.problem(held, sha256=_hashes(entry.sha256, held.name), say=say, label=source)
        if damage is None:
            return cached
    if not source_file.is_file():
        raise PullError(f"{source}: {source_file} does not exist")
    if damage:  # the damaged file stays until a good one is there to take its place
        say(f"{entry.role} model {source}: the cached file is damaged ({damage}); importing it again from {source_file}")
    else:
        say(f"importing {entry.role} model {source} from {source_file}")
    wrong_size = integrity.size_problem(source_file)
    if wrong_size:
        raise PullError(f"{source}: {source_file} is damaged ({wrong_size}); not imported")
    digest = integrity.sha256_checked(source_file, say, label=str(source_file))
    if entry.sha256 and digest != entry.sha256:
        raise ChecksumMismatch(f"{source}: {source_file} has sha256 {digest}, models.toml pins {entry.sha256}; not imported")
    repo_dir = _repo_dir(entry.hf_repo)
    blob = repo_dir / "blobs" / digest
    blob.parent.mkdir(parents=True, exist_ok=True)
    for old in {blob, held} if damage else {blob}:
        if old.is_file() and (old == held or integrity.problem(old, sha256=[digest], say=say, label=source)):
            integrity.forget(old)
            old.unlink()
    if not blob.is_file():
        partial = blob.with_name(blob.name + ".tokint-partial")
        try:
            os.link(source_file, partial)  # same filesystem: no copy
        except OSError:
            import shutil

            shutil.copyfile(source_file, partial)
        os.replace(partial, blob)
    commit = entry.revision if entry.revision and re.fullmatch(r"[0-9a-f]{40}", entry.revision) else LOCAL_COMMIT
    snapshot = repo_dir / "snapshots" / commit / entry.file
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    if snapshot.is_symlink() or snapshot.exists():
        snapshot.unlink()
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    ref = repo_dir / "refs" / (entry.revision or "main")
    if commit == LOCAL_COMMIT:
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    integrity.remember(blob, sha256=digest, expected_size=blob.stat().st_size)  # named by its digest: its size is fixed
    if damage:
        say(f"{entry.role} model {source}: repaired")
    return snapshot


def pull_pair(entry: PairEntry, say: Callable[[str], None] = lambda _: None, folder: Path | None = None) -> tuple[Path, Path]:
    if folder is not None:
        return import_model(entry.base, folder, say), import_model(entry.reasoning, folder, say)
    return pull_model(entry.base, say), pull_model(entry.reasoning, say)


def missing_hub_models(entry: PairEntry) -> list[ModelEntry]:
    """The pair's hub models whose files are not in the cache yet."""
    return [m for m in (entry.base, entry.reasoning) if m.hf_repo and m.cached_path() is None]
