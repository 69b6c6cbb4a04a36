"""Conversations in the history store: each turn recorded with the conversation's id and its index,
the store of the previous schema migrated, `tokint history` showing and exporting every turn, and a
recorded conversation reopened to go on."""
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tokint_local.client import Client
from tokint_local.conversation import Conversation
from tokint_local.events import Summary, TokenEvent
from tokint_local.history import (
    MIGRATIONS, SCHEMA_VERSION, HistoryWriter, conversation_from_history, list_conversations, list_generations,
    show_conversation, show_generation,
)

ROOT = Path(__file__).resolve().parent.parent


def tokint(*args):
    return subprocess.run([sys.executable, "-m", "tokint_local.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_store_of_the_previous_schema_migrates_and_keeps_its_generations(tmp_path):
    path = tmp_path / "history.sqlite"
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:  # the schema tokint wrote before conversations (version 2)
        db.executescript(script)
    db.execute("PRAGMA user_version = 2")
    request = {"prompt": "hi", "mode": "intervene", "schedule": "block"}
    db.execute("INSERT INTO generations (id, created, pair, mode, prompt, request, state, schedule, finish_reason, "
               "summary, n_tokens, n_takeovers, ended) VALUES ('old', 1.0, 'tiny', 'intervene', 'hi', ?, 'done', 'block', "
               "'length', ?, 2, 1, 2.0)",
               (json.dumps(request), json.dumps({"n_tokens": 2, "n_takeovers": 1, "takeover_positions": [1],
                                                 "finish_reason": "length", "tokens_per_second": 1.0, "elapsed_s": 1.0})))
    db.executemany("INSERT INTO tokens VALUES ('old', ?, ?, ?, ?, ?, ?, ?)",
                   [(0, 5, "a", "base", 0.1, 1.0, 0.1), (1, 6, "b", "reasoning", 2.0, 1.5, 0.2)])
    db.commit()
    db.close()
    HistoryWriter(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    db.close()
    old = show_generation("old", path)
    assert [(t["text"], t["source"], t["channel"]) for t in old["tokens"]] == [("a", "base", "answer"), ("b", "reasoning", "answer")]
    assert old["conversation"] is None and old["turn"] is None
    assert list_generations(path=path)[0]["id"] == "old" and list_conversations(path=path) == []


def test_every_turn_is_recorded_shown_exported_and_reopened(daemon, tokint_home):
    conversation = Conversation(system="Be brief.", pair="tiny", settings={"max_tokens": 6})
    with Client(daemon.address) as client:
        for question in ("first question", "second one", "and a third"):
            events = list(conversation.send(client, question))
            assert isinstance(events[-1], Summary)
    assert [t.user for t in conversation.turns] == ["first question", "second one", "and a third"]
    wait_for(lambda: (tokint_home / "history.sqlite").exists() and len(list_generations()) == 3
             and all(g["state"] == "done" for g in list_generations()))
    rows = list_generations()
    assert {(g["conversation"], g["turn"]) for g in rows} == {(conversation.id, 0), (conversation.id, 1), (conversation.id, 2)}
    assert [c["id"] for c in list_conversations()] == [conversation.id] and list_conversations()[0]["turns"] == 3
    shown = show_conversation(conversation.id[:10])
    assert [g["prompt"] for g in shown["turns"]] == ["first question", "second one", "and a third"]
    assert ["".join(t["text"] for t in g["tokens"]) for g in shown["turns"]] == [t.response for t in conversation.turns]

    text = tokint("history", conversation.id[:10])
    assert text.returncode == 0, text.stderr
    for turn in conversation.turns:
        assert f"you> {turn.user}" in text.stdout
    assert "system:\nBe brief." in text.stdout and "3 turns" in text.stdout
    exported = json.loads(tokint("history", conversation.id[:10], "--json").stdout)
    assert len(exported["turns"]) == 3 and all(g["tokens"] for g in exported["turns"])
    listed = tokint("history", "--conversations")
    assert conversation.id[:12] in listed.stdout and "3 turns" in listed.stdout

    reopened = conversation_from_history(conversation.id[:10])
    assert reopened.id == conversation.id and reopened.system == "Be brief." and reopened.pair == "tiny"
    assert reopened.messages() == conversation.messages()
    assert reopened.settings["max_tokens"] == 6
    assert [[t.token_id for t in turn.tokens] for turn in reopened.turns] == \
        [[t.token_id for t in turn.tokens] for turn in conversation.turns]
    with Client(daemon.address) as client:  # and it goes on, as turn 3 of the same conversation
        list(reopened.send(client, "a fourth"))
    wait_for(lambda: len(list_generations()) == 4 and list_generations()[0]["state"] == "done")
    assert (list_generations()[0]["conversation"], list_generations()[0]["turn"]) == (conversation.id, 3)


def test_a_conversation_saved_and_loaded_keeps_every_turn(tmp_path):
    conversation = Conversation(system="s", pair="p", settings={"threshold": 0.5})
    conversation.turns = Conversation.from_messages([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]).turns
    conversation.turns[0].tokens = [TokenEvent(0, 1, "b", "reasoning", 2.0, 1.0, None, 0.1, channel="answer")]
    loaded = Conversation.load(conversation.save(tmp_path / "c.json"))
    assert loaded.id == conversation.id and loaded.messages() == conversation.messages()
    assert loaded.settings == {"threshold": 0.5} and loaded.turns[0].tokens == conversation.turns[0].tokens
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps([{"role": "system", "content": "s"}, {"role": "user", "content": "a"},
                                 {"role": "assistant", "content": "b"}]))
    assert Conversation.load(plain).messages() == conversation.messages()
