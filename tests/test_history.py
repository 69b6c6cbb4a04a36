"""Generations recorded by tokintd in SQLite: as they go, through a crash, across schema versions."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DaemonProcess
from tokint_local.client import Client
from tokint_local.errors import DaemonUnavailable
from tokint_local.events import Summary, TokenEvent
from tokint_local.history import MIGRATIONS, SCHEMA_VERSION, HistoryWriter, list_generations, show_generation

ROOT = Path(__file__).resolve().parent.parent


def tokint(*args):
    return subprocess.run([sys.executable, "-m", "tokint_local.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_every_generation_is_recorded_with_its_tokens(daemon, tokint_home):
    with Client(daemon.address) as c:
        stream = c.generate("hello there", max_tokens=12, threshold=1.5, return_top=2)
        events = list(stream)
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    wait_for(lambda: (tokint_home / "history.sqlite").exists() and list_generations()[:1]
             and list_generations()[0]["state"] == "done")
    row = list_generations()[0]
    assert row["id"] == stream.id and row["n_tokens"] == 12 and row["finish_reason"] == "length"
    assert row["n_takeovers"] == events[-1].n_takeovers and row["pair"] == "tiny" and row["mode"] == "intervene"
    shown = show_generation(stream.id[:10])
    assert [(t["position"], t["token_id"], t["source"]) for t in shown["tokens"]] == \
        [(t.position, t.token_id, t.source) for t in tokens]
    assert [t["divergence"] for t in shown["tokens"]] == [t.divergence for t in tokens]
    assert shown["request"]["threshold"] == 1.5 and shown["summary"]["n_tokens"] == 12
    listed = tokint("history", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["id"] == stream.id
    text = tokint("history", stream.id[:8])
    assert text.returncode == 0 and "hello there" in text.stdout
    assert "mode intervene, gate divergence, threshold 1.5, budget unlimited" in text.stdout  # the takeover rule
    assert f"[12 tokens, {events[-1].n_takeovers} takeovers" in text.stdout  # the stored summary
    assert text.stdout.rstrip("\n").endswith("".join(t.text for t in tokens))  # not a tty: no colour codes


def test_a_daemon_killed_mid_generation_leaves_the_cut_one_marked_incomplete(tiny_models_toml, daemon_address, tokint_home):
    first = DaemonProcess(tiny_models_toml, daemon_address)
    client = Client(daemon_address, timeout=2.0)
    try:
        done = list(client.generate("finished before the crash", max_tokens=5))
        stream = client.generate("cut by the crash", pair="tiny-long", max_tokens=7000)
        seen = 0
        for event in stream:
            seen += isinstance(event, TokenEvent)
            if seen == 300:
                time.sleep(0.5)  # long enough for a flush of what streamed so far
                first.proc.send_signal(signal.SIGKILL)
                first.proc.wait()
                break
        with pytest.raises(DaemonUnavailable):
            for _ in stream:
                pass
        second = DaemonProcess(tiny_models_toml, daemon_address)  # opens the store, marks the cut one
        try:
            assert client.hello()["pid"] == second.proc.pid  # the same client reconnects by itself
            rows = {r["id"]: r for r in list_generations(limit=10)}
            assert rows[stream.id]["state"] == "incomplete"
            finished = [r for r in rows.values() if r["prompt"] == "finished before the crash"]
            assert finished and finished[0]["state"] == "done" and finished[0]["n_tokens"] == 5
            assert isinstance(done[-1], Summary)
            kept = len(show_generation(stream.id)["tokens"])
            print(f"daemon SIGKILLed after 300 streamed tokens: {kept} tokens of the cut generation kept, "
                  "marked incomplete on restart")
            assert kept >= 250
        finally:
            second.stop()
    finally:
        client.close()
        first.stop()


def test_schema_migrates_forward(tmp_path):
    path = tmp_path / "history.sqlite"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])  # a store written by the first version
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO generations (id, created, pair, mode, prompt, request, state) "
               "VALUES ('old', 1.0, 'p', 'base', 'hi', '{}', 'done')")
    db.commit()
    db.close()
    writer = HistoryWriter(path)
    writer.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert "schedule" in [r[1] for r in db.execute("PRAGMA table_info(generations)")]
    assert db.execute("SELECT prompt FROM generations WHERE id = 'old'").fetchone()[0] == "hi"
    db.close()


def test_a_full_disk_is_reported_once_and_nothing_else_breaks(tmp_path, caplog):
    path = tmp_path / "history.sqlite"
    writer = HistoryWriter(path)
    writer.close()
    db = sqlite3.connect(path)
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.close()
    writer = HistoryWriter(path)
    writer._db.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk is about to be full
    writer.begin("g1", "p", {"mode": "base", "prompt": "x" * 20000})
    for i in range(2000):
        writer.token("g1", {"position": i, "token_id": i, "text": "tok" * 20, "source": "base"})
    writer.end("g1", {"finish_reason": "length", "n_takeovers": 0})
    writer.close()
    assert writer.problem is not None and "full" in writer.problem
    assert sum("cannot be written" in r.getMessage() for r in caplog.records) == 1


def test_an_unusable_store_does_not_stop_generation(tiny_models_toml, daemon_address, tokint_home):
    (tokint_home / "history.sqlite").write_bytes(b"this is not a database" * 100)
    d = DaemonProcess(tiny_models_toml, daemon_address)
    try:
        with Client(daemon_address) as c:
            for _ in range(3):
                assert list(c.generate("hi", max_tokens=8))[-1].n_tokens == 8
            status = c.status()
        assert status.history_problem and "not a database" in status.history_problem
        d.stop()
        log = d.log.read_text()
        assert log.count("cannot be written") == 1  # reported once, not per generation or token
    finally:
        d.stop()


def test_a_read_only_store_is_reported_once(tmp_path, caplog):
    path = tmp_path / "history.sqlite"
    HistoryWriter(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=DELETE")  # a store at rest: no -wal or -shm files beside it
    db.close()
    if os.geteuid() == 0:  # root writes through file modes; the immutable attribute stops it
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("running as root where chattr +i is not allowed: cannot make a file read-only")
    else:
        os.chmod(path, 0o444)
    try:
        writer = HistoryWriter(path)
        for g in range(3):
            writer.begin(f"g{g}", "p", {"mode": "base", "prompt": "hi"})
            for i in range(200):
                writer.token(f"g{g}", {"position": i, "token_id": i, "text": "t", "source": "base"})
            writer.end(f"g{g}", {"finish_reason": "length", "n_takeovers": 0})
        writer.close()
        assert writer.problem is not None and "readonly" in writer.problem, writer.problem
        assert sum("cannot be written" in r.getMessage() for r in caplog.records) == 1
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
