"""tokint pull against a real local HTTP server that serves files as the hub does (HF_ENDPOINT)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_hub import COMMIT, FakeHub

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def hub(tiny_files):
    h = FakeHub()
    h.base_sha = h.add("tiny/base-GGUF", "tiny-base.gguf", tiny_files["base"].read_bytes())
    h.reasoning_sha = h.add("tiny/reasoning-GGUF", "tiny-reasoning.gguf", tiny_files["reasoning"].read_bytes())
    h.url = h.start()
    yield h
    h.release.set()
    h.stop()


@pytest.fixture
def hub_env(hub, tmp_path, tokint_home, daemon_address):
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="0",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_ETAG_TIMEOUT="5", HF_HUB_DOWNLOAD_TIMEOUT="5")
    env.pop("HF_TOKEN", None)
    return env


def write_models(tmp_path, hub, base_sha=None, base_file="tiny-base.gguf", base_repo="tiny/base-GGUF"):
    sha = base_sha if base_sha is not None else hub.base_sha
    p = tmp_path / "hub-models.toml"
    p.write_text(f"""
default_pair = "tinyhub"
[pairs.tinyhub]
base = {{ hf_repo = "{base_repo}", file = "{base_file}", sha256 = "{sha}", n_ctx = 256, n_threads = 1 }}
reasoning = {{ hf_repo = "tiny/reasoning-GGUF", file = "tiny-reasoning.gguf", n_ctx = 256, n_threads = 1 }}

[pairs.tinyhub.defaults]
max_tokens = 5
""")
    return p


def tokint(env, *args, timeout=60):
    return subprocess.run([sys.executable, "-m", "tokint_local.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def cache_files(env, repo):
    folder = Path(env["HF_HOME"]) / "hub" / f"models--{repo.replace('/', '--')}"
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()) if folder.exists() else []


def test_pull_downloads_with_progress_and_the_pair_then_runs(hub, hub_env, tmp_path):
    models = write_models(tmp_path, hub)
    r = tokint(hub_env, "pull", "tinyhub", "--models", str(models))
    assert r.returncode == 0, r.stderr
    assert "pulling base model tiny/base-GGUF:tiny-base.gguf" in r.stderr
    assert "100%" in r.stderr  # the download's progress bar
    assert "tinyhub is ready (compatible" in r.stderr
    listing = json.loads(tokint(hub_env, "pairs", "--json", "--models", str(models)).stdout)[0]
    assert listing["base"]["present"] and listing["reasoning"]["present"] and listing["compatible"] is True
    assert listing["pull"] is None and listing["defaults"] == {"max_tokens": 5}
    gen = tokint(hub_env, "generate", "--local", "--models", str(models), "--json", "hi")
    assert gen.returncode == 0, gen.stderr
    assert json.loads(gen.stdout.splitlines()[-1])["n_tokens"] == 5  # the pair's default max_tokens
    again = tokint(hub_env, "pull", "tinyhub", "--models", str(models))
    assert again.returncode == 0 and "pulling" not in again.stderr  # already here: nothing downloaded


def test_a_download_cut_off_mid_file_resumes(hub, hub_env, tmp_path):
    models = write_models(tmp_path, hub)
    hub.cut_after = 50_000
    r = tokint(hub_env, "pull", "tinyhub", "--models", str(models))
    assert r.returncode == 0, r.stderr
    ranges = [rng for method, path, rng in hub.requests if method == "GET" and "tiny-base" in path and rng]
    assert ranges == ["bytes=50000-"]  # it asked for the rest, not the whole file again


def test_an_interrupted_pull_leaves_nothing_usable_and_the_next_one_resumes(hub, hub_env, tmp_path):
    models = write_models(tmp_path, hub)
    hub.stall_after = 60_000
    proc = subprocess.Popen([sys.executable, "-m", "tokint_local.cli", "pull", "tinyhub", "--models", str(models)],
                            env=hub_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert hub.stalled.wait(30)
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    hub.release.set()
    files = cache_files(hub_env, "tiny/base-GGUF")
    assert any(f.endswith(".tokint-partial") for f in files)
    assert not any(f.startswith("snapshots/") for f in files)  # no file a load could take for complete
    listing = json.loads(tokint(hub_env, "pairs", "--json", "--models", str(models)).stdout)[0]
    assert listing["base"]["present"] is False and listing["pull"] == "tokint pull tinyhub"
    r = tokint(hub_env, "pull", "tinyhub", "--models", str(models))
    assert r.returncode == 0, r.stderr
    ranges = [rng for method, path, rng in hub.requests if method == "GET" and "tiny-base" in path and rng]
    assert ranges == ["bytes=60000-"]  # the new pull went on from what the killed one had written


def test_a_pinned_checksum_the_hub_does_not_have_is_refused_before_downloading(hub, hub_env, tmp_path):
    models = write_models(tmp_path, hub, base_sha="0" * 64)
    r = tokint(hub_env, "pull", "tinyhub", "--models", str(models))
    assert r.returncode == 1 and "but models.toml pins" in r.stderr and "nothing was downloaded" in r.stderr
    assert not any(m == "GET" and "tiny-base" in p for m, p, _ in hub.requests)


def test_corrupt_bytes_are_rejected_and_nothing_corrupt_stays(hub, hub_env, tmp_path):
    models = write_models(tmp_path, hub)
    hub.corrupt = True
    r = tokint(hub_env, "pull", "tinyhub", "--models", str(models))
    assert r.returncode == 1 and "checksum mismatch" in r.stderr and "deleted" in r.stderr
    assert not any(f.startswith(("snapshots/", "blobs/")) and not f.endswith(".lock")
                   for f in cache_files(hub_env, "tiny/base-GGUF"))
    gen = tokint(hub_env, "generate", "--local", "--models", str(models), "hi")
    assert gen.returncode == 1  # it tries to pull again, and refuses again
    assert "checksum mismatch" in gen.stderr and "Traceback" not in gen.stderr
    hub.corrupt = False
    assert tokint(hub_env, "pull", "tinyhub", "--models", str(models)).returncode == 0


@pytest.mark.parametrize(
    "repo,file,message",
    [
        ("nobody/missing-GGUF", "x.gguf", "no such repository on the hub"),
        ("tiny/base-GGUF", "absent.gguf", "the repository has no file 'absent.gguf'"),
    ],
)
def test_missing_repo_or_file_is_a_clear_error(hub, hub_env, tmp_path, repo, file, message):
    models = write_models(tmp_path, hub, base_repo=repo, base_file=file)
    r = tokint(hub_env, "pull", "tinyhub", "--models", str(models))
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr


def test_offline_mode_uses_the_cache(hub, hub_env, tmp_path):
    models = write_models(tmp_path, hub)
    assert tokint(hub_env, "pull", "tinyhub", "--models", str(models)).returncode == 0
    seen = len(hub.requests)
    offline = dict(hub_env, HF_HUB_OFFLINE="1")
    r = tokint(offline, "pull", "tinyhub", "--models", str(models))
    assert r.returncode == 0, r.stderr
    gen = tokint(offline, "generate", "--local", "--models", str(models), "hi")
    assert gen.returncode == 0, gen.stderr
    assert len(hub.requests) == seen  # nothing went to the network
    other = write_models(tmp_path, hub, base_file="elsewhere.gguf")
    r = tokint(offline, "pull", "tinyhub", "--models", str(other))
    assert r.returncode == 1 and "HF_HUB_OFFLINE is set and the file is not in the cache" in r.stderr


def test_gated_repo_asks_for_a_token(hub, hub_env, tmp_path):
    hub.gated.add("tiny/base-GGUF")
    models = write_models(tmp_path, hub)
    r = tokint(hub_env, "pull", "tinyhub", "--models", str(models))
    assert r.returncode == 1 and "HF_TOKEN" in r.stderr


def test_models_add_checks_and_writes_the_user_file(hub, hub_env, tmp_path, tiny_files, tokint_home):
    r = tokint(hub_env, "models", "add", "mine", "--base", "tiny/base-GGUF:tiny-base.gguf",
               "--reasoning", str(tiny_files["padded"]), "--description", "my pair")
    assert r.returncode == 0, r.stderr
    user = (tokint_home / "models.toml").read_text()
    assert "[pairs.mine]" in user and 'hf_repo = "tiny/base-GGUF"' in user
    listing = {p["name"]: p for p in json.loads(tokint(hub_env, "pairs", "--json").stdout)}
    assert listing["mine"]["compatible"] is True and listing["mine"]["description"] == "my pair"
    assert "qwen2.5-coder" in listing  # the shipped pairs are still there
    refused = tokint(hub_env, "models", "add", "bad", "--base", str(tiny_files["base"]), "--reasoning", str(tiny_files["other"]))
    assert refused.returncode == 1 and "not added" in refused.stderr and "token 256 differs" in refused.stderr
    assert "[pairs.bad]" not in (tokint_home / "models.toml").read_text()
    again = tokint(hub_env, "models", "add", "mine", "--base", str(tiny_files["base"]), "--reasoning", str(tiny_files["reasoning"]))
    assert again.returncode == 1 and "--force" in again.stderr


def test_pull_from_a_folder_imports_without_the_hub(hub, hub_env, tmp_path, tiny_files):
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "tiny-base.gguf").write_bytes(tiny_files["base"].read_bytes())
    (folder / "tiny-reasoning.gguf").write_bytes(tiny_files["reasoning"].read_bytes())
    models = write_models(tmp_path, hub)
    offline = dict(hub_env, HF_HUB_OFFLINE="1")
    r = tokint(offline, "pull", "tinyhub", "--models", str(models), "--from", str(folder))
    assert r.returncode == 0, r.stderr
    assert "importing base model" in r.stderr and not hub.requests
    gen = tokint(offline, "generate", "--local", "--models", str(models), "hi")
    assert gen.returncode == 0, gen.stderr
    online = tokint(hub_env, "pull", "tinyhub", "--models", str(models))
    assert online.returncode == 0 and "pulling" not in online.stderr  # stored by SHA-256: nothing to download
    (folder / "tiny-base.gguf").write_bytes(b"not the pinned file")
    bad = write_models(tmp_path, hub, base_file="tiny-base.gguf", base_repo="tiny/other-GGUF")
    r = tokint(offline, "pull", "tinyhub", "--models", str(bad), "--from", str(folder))
    assert r.returncode == 1 and "not imported" in r.stderr


def test_a_pinned_revision_is_fetched_and_an_unknown_one_named(hub, hub_env, tmp_path):
    models = write_models(tmp_path, hub)
    pinned = tmp_path / "pinned.toml"
    pinned.write_text(models.read_text().replace('file = "tiny-base.gguf"', f'file = "tiny-base.gguf", revision = "{COMMIT}"'))
    r = tokint(hub_env, "pull", "tinyhub", "--models", str(pinned))
    assert r.returncode == 0, r.stderr
    assert any(f"/resolve/{COMMIT}/tiny-base.gguf" in p for _, p, _ in hub.requests)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(models.read_text().replace('file = "tiny-base.gguf"', 'file = "tiny-base.gguf", revision = "v9"'))
    r = tokint(hub_env, "pull", "tinyhub", "--models", str(wrong))
    assert r.returncode == 1 and "no revision 'v9' in tiny/base-GGUF" in r.stderr


# -- a damaged file in the cache ---------------------------------------------------------------

def cached_blob(env, repo: str, file: str) -> Path:
    folder = Path(env["HF_HOME"]) / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots"
    (link,) = folder.glob(f"*/{file}")
    return link.resolve()


def verified_record(tokint_home) -> dict:
    return json.loads((tokint_home / "verified-files.json").read_text())


def pairs_json(env, models) -> dict:
    return json.loads(tokint(env, "pairs", "--json", "--models", str(models)).stdout)[0]


def test_a_cut_cache_file_is_reported_and_pull_repairs_it(hub, hub_env, tmp_path, tokint_home):
    models = write_models(tmp_path, hub)
    assert tokint(hub_env, "pull", "tinyhub", "--models", str(models)).returncode == 0
    blob = cached_blob(hub_env, "tiny/base-GGUF", "tiny-base.gguf")
    whole = blob.read_bytes()
    half = len(whole) // 2
    os.truncate(blob, half)  # in place, as a full disk or an interrupted copy leaves it

    listing = pairs_json(hub_env, models)
    assert listing["compatible"] is False and listing["pull"] == "tokint pull tinyhub"
    assert listing["base"]["damage"] == f"{half:,} bytes where the whole file has {len(whole):,}"  # the hub's size, recorded at pull
    assert "damaged" in listing["compat_detail"] and "tokint pull tinyhub" in listing["compat_detail"]
    assert listing["reasoning"]["damage"] is None
    assert "DAMAGED" in tokint(hub_env, "pairs", "--models", str(models)).stdout
    (tokint_home / "verified-files.json").unlink()  # without the record the GGUF header still tells
    assert pairs_json(hub_env, models)["base"]["damage"].startswith(f"cut short: {half:,} bytes where its GGUF header needs")

    seen = len(hub.requests)
    r = tokint(hub_env, "pull", "tinyhub", "--models", str(models))
    assert r.returncode == 0, r.stderr
    assert "the cached file is damaged" in r.stderr and "base model tiny/base-GGUF:tiny-base.gguf: repaired" in r.stderr
    assert "tinyhub is ready (compatible" in r.stderr
    assert blob.read_bytes() == whole
    ranges = [rng for method, path, rng in hub.requests[seen:] if method == "GET" and "tiny-base" in path]
    assert ranges == [f"bytes={half}-"]  # the kept half was resumed from, and the whole checked
    print(f"cut to {half:,} of {len(whole):,} bytes: pairs said so; pull resumed with Range {ranges[0]} and repaired it")
    assert pairs_json(hub_env, models)["compatible"] is True

    entry = verified_record(tokint_home)[str(blob)]
    st = blob.stat()
    assert entry == {"sha256": hub.base_sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "expected_size": len(whole)}
    again = tokint(hub_env, "pull", "tinyhub", "--models", str(models))
    assert again.returncode == 0, again.stderr
    assert "checking" not in again.stderr and "damaged" not in again.stderr  # the record vouched: nothing hashed
    gen = tokint(hub_env, "generate", "--local", "--models", str(models), "hi")
    assert gen.returncode == 0, gen.stderr


def test_changed_bytes_of_the_right_size_are_found_by_their_digest(hub, hub_env, tmp_path):
    models = write_models(tmp_path, hub)
    assert tokint(hub_env, "pull", "tinyhub", "--models", str(models)).returncode == 0
    blob = cached_blob(hub_env, "tiny/base-GGUF", "tiny-base.gguf")
    whole = blob.read_bytes()
    with open(blob, "r+b") as f:  # the size stays; the mtime moves, so the record no longer vouches
        f.seek(len(whole) - 10)
        f.write(bytes(10))
    seen = len(hub.requests)
    r = tokint(hub_env, "pull", "tinyhub", "--models", str(models))
    assert r.returncode == 0, r.stderr
    assert "checking tiny/base-GGUF:tiny-base.gguf" in r.stderr and f"where {hub.base_sha} is expected" in r.stderr and "repaired" in r.stderr
    assert blob.read_bytes() == whole
    ranges = [rng for method, path, rng in hub.requests[seen:] if method == "GET" and "tiny-base" in path]
    assert ranges == [None]  # nothing of it was kept


def test_a_cut_file_whose_kept_part_is_bad_too_is_downloaded_whole(hub, hub_env, tmp_path):
    models = write_models(tmp_path, hub)
    assert tokint(hub_env, "pull", "tinyhub", "--models", str(models)).returncode == 0
    blob = cached_blob(hub_env, "tiny/base-GGUF", "tiny-base.gguf")
    whole = blob.read_bytes()
    blob.write_bytes(bytes(100) + whole[100 : len(whole) // 2])  # cut, and its start is wrong as well
    seen = len(hub.requests)
    r = tokint(hub_env, "pull", "tinyhub", "--models", str(models))
    assert r.returncode == 0, r.stderr
    assert "the part kept was damaged too" in r.stderr and "repaired" in r.stderr
    assert blob.read_bytes() == whole
    ranges = [rng for method, path, rng in hub.requests[seen:] if method == "GET" and "tiny-base" in path]
    assert ranges == [f"bytes={len(whole) // 2}-", None]  # resumed, refused by the digest, then fetched whole


def test_pull_from_a_folder_repairs_a_cut_cache_file(hub, hub_env, tmp_path, tiny_files):
    folder = tmp_path / "downloads"
    folder.mkdir()
    good = tiny_files["base"].read_bytes()
    (folder / "tiny-base.gguf").write_bytes(good)
    (folder / "tiny-reasoning.gguf").write_bytes(tiny_files["reasoning"].read_bytes())
    models = write_models(tmp_path, hub)
    offline = dict(hub_env, HF_HUB_OFFLINE="1")
    assert tokint(offline, "pull", "tinyhub", "--models", str(models), "--from", str(folder)).returncode == 0
    blob = cached_blob(offline, "tiny/base-GGUF", "tiny-base.gguf")
    os.truncate(blob, len(good) // 3)

    assert pairs_json(offline, models)["base"]["damage"] is not None
    r = tokint(offline, "pull", "tinyhub", "--models", str(models))
    assert r.returncode == 1 and "damaged" in r.stderr and "--from DIR" in r.stderr  # offline it cannot repair
    if (folder / "tiny-base.gguf").stat().st_size != len(good):  # the import linked the two: both were cut
        r = tokint(offline, "pull", "tinyhub", "--models", str(models), "--from", str(folder))
        assert r.returncode == 1 and "not imported" in r.stderr
        (folder / "tiny-base.gguf").unlink()
        (folder / "tiny-base.gguf").write_bytes(good)  # a good copy again
    r = tokint(offline, "pull", "tinyhub", "--models", str(models), "--from", str(folder))
    assert r.returncode == 0, r.stderr
    assert "importing it again" in r.stderr and "repaired" in r.stderr
    assert cached_blob(offline, "tiny/base-GGUF", "tiny-base.gguf").read_bytes() == good
    assert pairs_json(offline, models)["compatible"] is True
    again = tokint(offline, "pull", "tinyhub", "--models", str(models), "--from", str(folder))
    assert again.returncode == 0 and "checking" not in again.stderr and "importing" not in again.stderr
    assert not hub.requests


def test_the_gguf_header_tells_a_cut_file(tiny_files, tmp_path):
    from tokint_local.gguf_meta import required_size

    data = tiny_files["base"].read_bytes()
    needed = required_size(tiny_files["base"])
    assert len(data) - 32 < needed <= len(data)  # the writer pads the last tensor to the alignment
    for cut in (needed - 1, len(data) // 2, 200):  # in the tensor data, and inside the header itself
        short = tmp_path / f"cut-{cut}.gguf"
        short.write_bytes(data[:cut])
        assert required_size(short) > cut
    assert required_size(tmp_path / "absent.gguf") is None


@pytest.mark.real
def test_the_gguf_header_gives_the_size_of_the_real_files():
    from conftest import REAL_BASE, REAL_MISSING, REAL_OTHER_VOCAB, REAL_REASONING
    from tokint_local.gguf_meta import required_size

    files = [REAL_BASE, REAL_REASONING, REAL_OTHER_VOCAB]
    if not all(p.is_file() for p in files):
        pytest.skip(REAL_MISSING)
    for path in files:  # headers only: no weights are read and no llama.cpp runs
        size = path.stat().st_size
        print(f"{path.name}: {size:,} bytes, the header needs {required_size(path):,}")
        assert required_size(path) == size
