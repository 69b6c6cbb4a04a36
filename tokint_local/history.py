"""The durable record of generations: SQLite (WAL) in TOKINT_HOME/history.sqlite.

tokintd writes every generation as it goes: the request and settings when it starts, its tokens
(source, divergence, entropy, time) in small batches, the summary and finish reason at the end.
A daemon that dies mid-generation leaves that generation "running"; the next time the store is
opened for writing it is marked "incomplete", with the tokens that reached the disk. Readers
(`tokint history`, `tokint chat --resume`, tokint-tui) open the same file read-only.

A turn of a conversation is a generation with the conversation's id (chosen by the client) and its
turn index (0 for the first answer; the number of user messages before the last). Its request holds
the whole conversation up to that turn, so the latest turn and its response are the conversation.

Schema versions migrate forward: MIGRATIONS[n] takes a version-n database to version n + 1.
"""
from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from .config import tokint_home
from .errors import TokintError

if TYPE_CHECKING:
    from .conversation import Conversation

log = logging.getLogger("tokint.history")

MIGRATIONS = [
    # 0 -> 1: the first schema
    """
    CREATE TABLE generations (
        id TEXT PRIMARY KEY, created REAL NOT NULL, pair TEXT, mode TEXT, prompt TEXT, request TEXT,
        state TEXT NOT NULL, finish_reason TEXT, error TEXT, summary TEXT, n_tokens INTEGER DEFAULT 0,
        n_takeovers INTEGER DEFAULT 0, ended REAL
    );
    CREATE TABLE tokens (
        generation TEXT NOT NULL, position INTEGER NOT NULL, token_id INTEGER, text TEXT, source TEXT,
        divergence REAL, base_entropy REAL, t REAL, PRIMARY KEY (generation, position)
    ) WITHOUT ROWID;
    """,
    # 1 -> 2: the schedule a generation ran with, and listing newest first without a scan
    """
    ALTER TABLE generations ADD COLUMN schedule TEXT;
    CREATE INDEX generations_created ON generations (created DESC);
    """,
    # 2 -> 3: conversations (the client's conversation id and the turn's index) and each token's channel
    """
    ALTER TABLE generations ADD COLUMN conversation TEXT;
    ALTER TABLE generations ADD COLUMN turn INTEGER;
    ALTER TABLE tokens ADD COLUMN channel TEXT;
    CREATE INDEX generations_conversation ON generations (conversation, created);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
FLUSH_EVERY_S = 0.2


class HistoryError(TokintError):
    code = "history_error"


def history_path() -> Path:
    return tokint_home() / "history.sqlite"


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        if not path.exists():
            raise HistoryError(f"no history yet ({path} does not exist)")
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=5, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
    db.row_factory = sqlite3.Row
    return db


def migrate(db: sqlite3.Connection) -> int:
    """Bring a database to SCHEMA_VERSION; returns the version it was at."""
    found = db.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise HistoryError(f"the history store is schema version {found}, newer than this tokint ({SCHEMA_VERSION})")
    for version in range(found, SCHEMA_VERSION):
        with db:
            db.executescript(MIGRATIONS[version])
            db.execute(f"PRAGMA user_version = {version + 1}")
    return found


@dataclass
class _Pending:
    begins: list = field(default_factory=list)
    tokens: list = field(default_factory=list)
    ends: list = field(default_factory=list)


class HistoryWriter:
    """The daemon's side: a thread of its own batches writes, so generation never waits on disk.

    If the store cannot be written (disk full, read-only, corrupt) the problem is logged once,
    ``problem`` says what it was, and generations go on unrecorded.
    """

    def __init__(self, path: Optional[Path] = None):
        self.path = path or history_path()
        self.problem: Optional[str] = None
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="history", daemon=True)
        self._db: Optional[sqlite3.Connection] = None
        try:
            self._db = _connect(self.path, readonly=False)
            migrate(self._db)
            with self._db:
                cut = self._db.execute("UPDATE generations SET state = 'incomplete' WHERE state = 'running'").rowcount
            if cut:
                log.warning("history: %d generation(s) cut off by an earlier stop marked incomplete", cut)
        except (sqlite3.Error, OSError, HistoryError) as exc:
            self._fail(exc)
        self._thread.start()

    # -- called from any thread (the llama thread, the loop) --------------------------------
    def begin(self, gen_id: str, pair: str, request: dict, created: Optional[float] = None) -> None:
        """Record a generation that started; ``created`` (wall clock) defaults to now."""
        prompt, turn = request.get("prompt"), None
        messages = request.get("messages")
        if prompt is None and messages:  # a conversation: the message it answers
            prompt = messages[-1].get("content")
            turn = sum(1 for m in messages if m.get("role") == "user") - 1
        self._queue.put(("begin", (gen_id, created or time.time(), pair, request.get("mode"), prompt, json.dumps(request),
                                   "running", request.get("schedule"), request.get("conversation_id"), turn)))

    def token(self, gen_id: str, event: dict) -> None:
        self._queue.put(("token", (gen_id, event["position"], event["token_id"], event["text"], event["source"],
                                   event.get("divergence"), event.get("base_entropy"), event.get("t"), event.get("channel"))))

    def end(self, gen_id: str, summary: Optional[dict] = None, error: Optional[str] = None) -> None:
        self._queue.put(("end", (gen_id, summary, error)))

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(("stop", None))
        self._thread.join(timeout)

    # -- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        pending = _Pending()
        deadline = time.monotonic() + FLUSH_EVERY_S
        while True:
            try:
                kind, item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                kind, item = "flush", None
            if kind == "begin":
                pending.begins.append(item)
            elif kind == "token":
                pending.tokens.append(item)
            elif kind == "end":
                pending.ends.append(item)
            if kind in ("flush", "stop", "begin", "end") or time.monotonic() >= deadline:
                self._flush(pending)
                pending = _Pending()
                deadline = time.monotonic() + FLUSH_EVERY_S
            if kind == "stop":
                if self._db is not None:
                    self._db.close()
                return

    def _flush(self, p: _Pending) -> None:
        if self._db is None or not (p.begins or p.tokens or p.ends):
            return
        try:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO generations (id, created, pair, mode, prompt, request, state, schedule, "
                    "conversation, turn) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", p.begins)
                self._db.executemany(
                    "INSERT OR REPLACE INTO tokens (generation, position, token_id, text, source, divergence, "
                    "base_entropy, t, channel) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", p.tokens)
                for gen_id, summary, error in p.ends:
                    s = summary or {}
                    self._db.execute(
                        "UPDATE generations SET state = ?, finish_reason = ?, error = ?, summary = ?, ended = ?, "
                        "n_tokens = (SELECT COUNT(*) FROM tokens WHERE generation = ?), n_takeovers = ? WHERE id = ?",
                        ("done" if error is None else "failed", s.get("finish_reason"), error,
                         json.dumps(summary) if summary else None, time.time(), gen_id, s.get("n_takeovers", 0), gen_id))
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        if self.problem is None:  # said once, not per token
            self.problem = f"{type(exc).__name__}: {exc}"
            log.error("history store %s cannot be written (%s); generations go on unrecorded", self.path, self.problem)
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        self._db = None


def list_generations(limit: int = 20, path: Optional[Path] = None) -> list[dict[str, Any]]:
    """The most recent generations, newest first (``conversation`` and ``turn`` are None outside a conversation)."""
    db = _connect(path or history_path(), readonly=True)
    try:
        rows = db.execute("SELECT id, created, pair, mode, prompt, state, finish_reason, n_tokens, n_takeovers, ended, "
                          "conversation, turn FROM generations ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        return [dict(r) for r in rows]
    finally:
        db.close()


def list_conversations(limit: int = 20, path: Optional[Path] = None) -> list[dict[str, Any]]:
    """The most recent conversations, newest first: id, started, updated, turns, pair, first and last user message."""
    db = _connect(path or history_path(), readonly=True)
    try:
        rows = db.execute(
            "SELECT conversation AS id, MIN(created) AS started, MAX(created) AS updated, MAX(turn) + 1 AS turns, "
            "COUNT(*) AS generations, MAX(pair) AS pair, "
            "(SELECT prompt FROM generations f WHERE f.conversation = g.conversation ORDER BY created LIMIT 1) AS first, "
            "(SELECT prompt FROM generations l WHERE l.conversation = g.conversation ORDER BY created DESC LIMIT 1) AS last "
            "FROM generations g WHERE conversation IS NOT NULL GROUP BY conversation ORDER BY updated DESC LIMIT ?",
            (limit,)).fetchall()
        return [dict(r) for r in rows]
    finally:
        db.close()


def _generation(db: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    out["request"] = json.loads(out["request"]) if out["request"] else None
    out["summary"] = json.loads(out["summary"]) if out["summary"] else None
    out["tokens"] = [dict(r) for r in db.execute(
        "SELECT position, token_id, text, source, divergence, base_entropy, t, channel FROM tokens WHERE generation = ? "
        "ORDER BY position", (out["id"],))]
    for token in out["tokens"]:
        token["channel"] = token["channel"] or "answer"  # recorded before channels existed
    return out


def show_generation(gen_id: str, path: Optional[Path] = None) -> dict[str, Any]:
    """One generation with its tokens; ``gen_id`` may be a unique prefix."""
    db = _connect(path or history_path(), readonly=True)
    try:
        rows = db.execute("SELECT * FROM generations WHERE id LIKE ? ORDER BY created DESC LIMIT 2",
                          (gen_id.replace("%", "") + "%",)).fetchall()
        if not rows:
            raise HistoryError(f"no generation {gen_id!r} in the history")
        if len(rows) > 1:
            raise HistoryError(f"{gen_id!r} matches several generations; give more of the id")
        return _generation(db, rows[0])
    finally:
        db.close()


def find_conversation(conv_id: str, path: Optional[Path] = None) -> Optional[str]:
    """The full id of the conversation ``conv_id`` (a unique prefix) names, or None."""
    db = _connect(path or history_path(), readonly=True)
    try:
        rows = db.execute("SELECT DISTINCT conversation FROM generations WHERE conversation LIKE ? LIMIT 2",
                          (conv_id.replace("%", "") + "%",)).fetchall()
    finally:
        db.close()
    if len(rows) > 1:
        raise HistoryError(f"{conv_id!r} matches several conversations; give more of the id")
    return rows[0][0] if rows else None


def show_conversation(conv_id: str, path: Optional[Path] = None) -> dict[str, Any]:
    """A conversation: every generation recorded for it (each with its request and tokens), oldest first.

    A turn answered again (the same turn index twice) appears each time; ``turns`` keeps the latest
    answer of each turn that leads to the conversation's last one.
    """
    found = find_conversation(conv_id, path)
    if found is None:
        raise HistoryError(f"no conversation {conv_id!r} in the history")
    db = _connect(path or history_path(), readonly=True)
    try:
        generations = [_generation(db, r) for r in db.execute(
            "SELECT * FROM generations WHERE conversation = ? ORDER BY created", (found,))]
    finally:
        db.close()
    latest: dict[int, dict[str, Any]] = {}
    for g in generations:
        latest[g["turn"] if g["turn"] is not None else len(latest)] = g
    last = generations[-1]
    turns = [latest[i] for i in sorted(latest) if i <= (last["turn"] or 0)]
    return {"id": found, "pair": last["pair"], "generations": generations, "turns": turns}


def conversation_from_history(conv_id: str, path: Optional[Path] = None) -> "Conversation":
    """The recorded conversation, ready to go on: its messages up to the last turn, that turn's response,
    the pair and the settings it ran with; each turn's token events where its generation is recorded."""
    from .conversation import Conversation, Turn
    from .events import GenerationRequest, Summary, TokenEvent

    shown = show_conversation(conv_id, path)
    last = shown["turns"][-1]
    request = last["request"] or {}
    messages = list(request.get("messages") or [])
    response = "".join(t["text"] or "" for t in last["tokens"])
    conversation = Conversation.from_messages(messages + [{"role": "assistant", "content": response}])
    conversation.id, conversation.pair = shown["id"], shown["pair"]
    kept = ("mode", "divergence", "threshold", "budget", "max_tokens", "temperature", "top_k", "top_p", "max_position",
            "min_base_entropy", "schedule", "chat_template_kwargs")
    defaults = GenerationRequest(prompt="-").to_wire()
    conversation.settings = {k: request[k] for k in kept if k in request and request[k] != defaults.get(k)}
    recorded = {g["turn"]: g for g in shown["turns"] if g["turn"] is not None}
    for i, turn in enumerate(conversation.turns):
        g = recorded.get(i)
        if g is None or (g["request"] or {}).get("messages", [{}])[-1].get("content") != turn.user:
            continue
        turn.generation_id = g["id"]
        turn.tokens = [TokenEvent(position=t["position"], token_id=t["token_id"], text=t["text"] or "", source=t["source"],
                                  divergence=t["divergence"], base_entropy=t["base_entropy"], budget_left=None,
                                  t=t["t"] or 0.0, channel=t["channel"]) for t in g["tokens"]]
        turn.summary = Summary.from_wire(g["summary"]) if g["summary"] else None
        if i < len(conversation.turns) - 1 and "".join(t.text for t in turn.tokens) != turn.response:
            turn.tokens = []  # the conversation went on with another text for this turn (edited): keep its words
    return conversation
