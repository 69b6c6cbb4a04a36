"""tokintd's socket loop: ZeroMQ ROUTER sockets, one asyncio loop, handlers per message type.

The OpenAI-compatible HTTP API (http_api.py), when asked for, runs on the same loop and submits
its generations through ``Daemon.submit`` as ZeroMQ clients do: same queues, limits and history.

The loop only parses, dispatches and sends; model loading and generation run in the llama.cpp
worker process (scheduler.py, supervisor.py, worker.py), so nothing llama.cpp does can end it.
Every request gets a reply or an ``error``; nothing a client sends can stop the daemon serving
everyone else.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Hashable, Optional, Protocol

import zmq
import zmq.asyncio

from tokint_local import __version__
from tokint_local.errors import InvalidParameter, TokintError
from tokint_local.events import GenerationRequest, with_pair_defaults
from tokint_local.history import HistoryWriter
from tokint_local.status import DaemonStatus, describe_pair
from tokint_local.wire import (
    HEARTBEAT_INTERVAL_S, HEARTBEAT_TIMEOUT_S, MAX_FRAME_BYTES_HARD, MAX_MESSAGE_BYTES, PROTOCOL_VERSION,
    SUPPORTED_VERSIONS, Message, ProtocolError, error_message, peek_version,
)

from tokint_local.config import ModelsFile, PairEntry

from .scheduler import Job, Scheduler
from .security import CurveKeys, make_curve_server, restrict_ipc_socket, secure_ipc_endpoint

if TYPE_CHECKING:
    from .http_api import HttpSettings

log = logging.getLogger("tokintd")
SHUTDOWN_GRACE_S = 4.0
SLOW_REQUESTS = {"load_pair", "unload_pair", "list_pairs"}
MAX_JOBS_PER_CLIENT = 32  # generations one client may have queued or running at once
WATCHDOG_EVERY_S = 0.1  # how often silent clients are looked for: a dead one is noticed within timeout + this
SEND_HWM = 100_000  # messages queued per client before ZeroMQ drops: a 4,000-token stream fits many times


@dataclass(frozen=True)
class Peer:
    """A ZeroMQ client."""

    socket: int  # index into the daemon's sockets
    identity: bytes

    @property
    def client(self) -> Hashable:
        """Whose per-client limit a generation counts against."""
        return self.identity


class LocalPeer(Protocol):
    """A client inside the daemon (an HTTP request): it takes its messages itself."""

    client: Hashable

    def deliver(self, message: Message) -> None: ...


class Daemon:
    def __init__(self, models: ModelsFile, local: list[str], tcp: list[str] = (), curve: Optional[CurveKeys] = None,
                 history: Optional[HistoryWriter] = None, models_arg: Optional[str] = None, log_level: str = "info",
                 http: Optional["HttpSettings"] = None,
                 parallel: int = 1):
        self.models = models
        self.local, self.tcp, self.curve = list(local), list(tcp), curve  # tcp: CURVE-authenticated
        self.addresses = self.local + self.tcp
        self.started = time.monotonic()
        self.ctx = zmq.asyncio.Context()
        self.sockets: list[zmq.asyncio.Socket] = []
        self.history = history
        self.scheduler = Scheduler(models_arg, self.send, history, log_level, parallel,
                                   slots=lambda name: self.models.pair(name).slots(parallel))
        self.last_seen: dict[Peer, float] = {}
        self.versions: dict[Peer, int] = {}  # the protocol version each client speaks: it is answered in it
        self.stopping = asyncio.Event()
        self._auth = None
        self._tasks: set[asyncio.Task] = set()
        self.http = None
        if http is not None:
            from .http_api import HttpApi  # starlette and uvicorn only for a daemon that serves HTTP

            self.http = HttpApi(self, http)
        self._handlers: dict[str, Callable[[Peer, Message], Awaitable[None]]] = {
            "hello": self._hello, "status": self._status, "list_pairs": self._list_pairs, "load_pair": self._load_pair,
            "unload_pair": self._unload_pair, "generate": self._generate, "cancel": self._cancel,
            "shutdown": self._shutdown, "heartbeat": self._heartbeat,
        }

    # -- lifecycle -------------------------------------------------------------------------
    def bind(self) -> None:
        """Bind every address; raises zmq.ZMQError (e.g. address in use) before serving anything."""
        if self.local:
            sock = self._router()
            for address in self.local:
                secure_ipc_endpoint(address)
                old = os.umask(0o077)
                try:
                    sock.bind(address)
                finally:
                    os.umask(old)
                restrict_ipc_socket(address)
        if self.tcp:
            sock = self._router()
            make_curve_server(sock, self.curve)
            for address in self.tcp:
                sock.bind(address)
        log.info("listening on %s", ", ".join(self.addresses))
        if self.http is not None:
            self.http.bind()

    def _router(self) -> zmq.asyncio.Socket:
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 1000)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES_HARD)
        sock.setsockopt(zmq.SNDHWM, SEND_HWM)
        sock.setsockopt(zmq.RCVHWM, 10_000)
        self.sockets.append(sock)
        return sock

    async def serve(self, preload: list[str] = ()) -> None:
        loop = asyncio.get_running_loop()
        if self.tcp:  # the ZAP handler answers CURVE handshakes; it needs this running loop
            from zmq.auth.asyncio import AsyncioAuthenticator

            self._auth = AsyncioAuthenticator(self.ctx)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(self.curve.authorized_dir))
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.stopping.set)
            except (NotImplementedError, RuntimeError):  # not the main thread (tests) or no signals
                pass
        self.scheduler.start()
        readers = [loop.create_task(self._read(i, sock)) for i, sock in enumerate(self.sockets)]
        watchdog = loop.create_task(self._watch_clients())
        if self.http is not None:
            self.http.start()
        for name in preload:
            try:
                await self.scheduler.load(self.models.pair(name).name)
                log.info("preloaded pair %s", name)
            except TokintError as exc:
                log.error("could not preload pair %s: %s", name, exc)
        await self.stopping.wait()
        log.info("shutting down")
        for task in readers:
            task.cancel()
        watchdog.cancel()
        await self.scheduler.shutdown(SHUTDOWN_GRACE_S)
        await asyncio.sleep(0.05)  # let the last events posted by worker threads reach the sockets
        if self.http is not None:
            await self.http.stop()
        for sock in self.sockets:
            sock.close(linger=500)
        if self._auth is not None:
            self._auth.stop()
        self.ctx.term()
        if self.history is not None:
            await asyncio.to_thread(self.history.close)
        log.info("stopped")

    # -- sockets ---------------------------------------------------------------------------
    def send(self, peer: "Peer | LocalPeer", message: Message) -> None:
        """Send on the loop thread; a closed socket or a gone client drops the message."""
        if not isinstance(peer, Peer):
            peer.deliver(message)
            return
        sock = self.sockets[peer.socket]
        if sock.closed:
            return
        version = self.versions.get(peer, PROTOCOL_VERSION)
        if message.version != version:
            message = replace(message, version=version)
        try:
            sock.send_multipart([peer.identity, *message.to_frames()], flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            log.debug("dropped %s for a client: %s", message.type, exc)

    async def _read(self, index: int, sock: zmq.asyncio.Socket) -> None:
        while True:
            frames = await sock.recv_multipart()
            peer = Peer(index, frames[0])
            self.last_seen[peer] = time.monotonic()
            try:
                message = Message.from_frames(frames[1:])
                self.versions[peer] = message.version
            except ProtocolError as exc:
                self.versions[peer] = peek_version(frames[1:]) or self.versions.get(peer, PROTOCOL_VERSION)
                log.debug("bad message from a client: %s", exc)
                self.send(peer, error_message(exc.code, str(exc), exc.parent))
                continue
            handler = self._handlers.get(message.type)
            if handler is None:
                self.send(peer, error_message("unknown_type", f"unknown message type {message.type!r}", message.id))
                continue
            if self.scheduler.closing and message.type != "heartbeat":
                self.send(peer, error_message("shutting_down", "tokintd is shutting down", message.id))
                continue
            if message.type in SLOW_REQUESTS:  # may wait on a worker thread: do not hold up the loop
                task = asyncio.get_running_loop().create_task(self._handle(handler, peer, message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:  # in order: generate requests queue in the order they arrived
                await self._handle(handler, peer, message)

    async def _handle(self, handler: Callable[[Peer, Message], Awaitable[None]], peer: Peer, message: Message) -> None:
        try:
            await handler(peer, message)
        except TokintError as exc:
            self.send(peer, error_message(exc.code, str(exc), message.id))
        except Exception as exc:  # a bug in one handler must not stop the daemon
            log.exception("handler for %s failed", message.type)
            self.send(peer, error_message("internal", f"internal error: {type(exc).__name__}: {exc}", message.id))

    async def _watch_clients(self) -> None:
        """Cancel the generations of clients that stopped sending heartbeats."""
        while True:
            await asyncio.sleep(WATCHDOG_EVERY_S)
            if self._unread():  # a loop that fell behind (a loaded machine) reads its heartbeats first
                continue
            now = time.monotonic()
            for job in list(self.scheduler.jobs.values()):
                seen = self.last_seen.get(job.peer, now)
                if now - seen > HEARTBEAT_TIMEOUT_S and job.cancel_reason is None:
                    log.info("client of generation %s went silent; cancelling it", job.id)
                    self.scheduler.cancel(job.id, "cancelled")
            active = {job.peer for job in self.scheduler.jobs.values()}
            for peer in [p for p, t in self.last_seen.items() if now - t > 60 and p not in active]:
                del self.last_seen[peer]
                self.versions.pop(peer, None)

    def _unread(self) -> bool:
        """True while a socket holds messages not read yet: silence is only judged on what was read."""
        # `get`, not `getsockopt`: on a zmq.asyncio socket only `get(EVENTS)` re-arms the loop's wake-up;
        # `getsockopt` (the base class's) consumes the edge, and messages then sit unread until
        # something else wakes the socket (the fuzzer and a TUI client waited seconds in CI).
        return any(not sock.closed and sock.get(zmq.EVENTS) & zmq.POLLIN for sock in self.sockets)

    def reply(self, peer: Peer, request: Message, content: dict[str, Any]) -> None:
        self.send(peer, Message(f"{request.type}_reply", content, parent=request.id))

    # -- handlers --------------------------------------------------------------------------
    async def _hello(self, peer: Peer, msg: Message) -> None:
        self.reply(peer, msg, {
            "daemon": "tokintd", "version": __version__, "protocol_version": PROTOCOL_VERSION,
            "protocol_versions": list(SUPPORTED_VERSIONS), "pid": os.getpid(),
            "models_file": str(self.models.path), "heartbeat_interval_s": HEARTBEAT_INTERVAL_S,
            "heartbeat_timeout_s": HEARTBEAT_TIMEOUT_S, "max_message_bytes": MAX_MESSAGE_BYTES,
        })

    async def _heartbeat(self, peer: Peer, msg: Message) -> None:
        self.reply(peer, msg, {})

    async def _status(self, peer: Peer, msg: Message) -> None:
        worker = self.scheduler.worker.status()
        status = DaemonStatus(
            version=__version__, protocol_version=PROTOCOL_VERSION, versions=dict(self.scheduler.worker.versions),
            uptime_s=time.monotonic() - self.started, pid=os.getpid(), models_file=str(self.models.path),
            addresses=self.addresses, memory_rss_bytes=_rss_bytes() + worker.memory_rss_bytes,
            model_bytes=self.scheduler.model_bytes, queue_length=self.scheduler.queue_length(),
            loaded_pairs=self.scheduler.loaded_pairs(), worker=worker,
            history_path=str(self.history.path) if self.history else None,
            history_problem=self.history.problem if self.history else None,
        )
        self.reply(peer, msg, status.to_wire())

    async def _list_pairs(self, peer: Peer, msg: Message) -> None:
        models, loaded = self.models, set(self.scheduler.loaded)
        listing = await asyncio.to_thread(
            lambda: [describe_pair(entry, name == models.default_pair, name in loaded) for name, entry in models.pairs.items()])
        self.reply(peer, msg, {"pairs": [p.to_wire() for p in listing], "default_pair": models.default_pair})

    def _pair_name(self, content: dict[str, Any], required: bool) -> str:
        name = content.get("pair")
        if name is None and not required:
            return self.models.pair(None).name
        if not isinstance(name, str):
            raise InvalidParameter("pair: must be a pair name")
        return self.models.pair(name).name

    async def _load_pair(self, peer: Peer, msg: Message) -> None:
        name = self._pair_name(msg.content, required=False)
        started = time.monotonic()
        await self.scheduler.load(name)
        self.reply(peer, msg, {"pair": name, "loaded": True, "seconds": time.monotonic() - started})

    async def _unload_pair(self, peer: Peer, msg: Message) -> None:
        name = self._pair_name(msg.content, required=True)
        if self.scheduler.busy(name):
            raise _Busy(f"pair {name!r} has generations running or queued; cancel them first")
        was_loaded = await self.scheduler.unload(name)
        self.reply(peer, msg, {"pair": name, "unloaded": was_loaded})

    async def _generate(self, peer: Peer, msg: Message) -> None:
        pair = msg.content.get("pair")
        if pair is not None and not isinstance(pair, str):
            raise InvalidParameter("pair: must be a pair name")
        self.submit(peer, msg.id, self.models.pair(pair), msg.content)

    def submit(self, peer: "Peer | LocalPeer", job_id: str, entry: PairEntry, fields: dict[str, Any]) -> Job:
        """Queue a generation on ``entry`` for a ZeroMQ client or an HTTP request; fields not given come
        from the pair's defaults. TokintError (nothing queued) when refused."""
        if self.scheduler.closing:
            raise _ShuttingDown("tokintd is shutting down")
        request = GenerationRequest.from_wire(with_pair_defaults(entry.defaults, fields))
        if job_id in self.scheduler.jobs:
            raise InvalidParameter(f"a generation with id {job_id!r} is already running; use a fresh message id")
        if sum(1 for job in self.scheduler.jobs.values() if job.peer.client == peer.client and not job.ended) >= MAX_JOBS_PER_CLIENT:
            raise _TooMany(f"this client already has {MAX_JOBS_PER_CLIENT} generations queued or running; "
                           "wait for some to finish")
        job = Job(id=job_id, peer=peer, request=request, pair_name=entry.name)
        self.scheduler.submit(job)
        return job

    async def _cancel(self, peer: Peer, msg: Message) -> None:
        target = msg.content.get("id")
        if not isinstance(target, str):
            raise InvalidParameter("id: must be the id of a generate request")
        job = self.scheduler.jobs.get(target)
        if job is None or job.peer.client != peer.client:
            raise _UnknownRequest(f"no running or queued generation {target!r} of yours")
        self.scheduler.cancel(target)
        self.reply(peer, msg, {"id": target, "cancelled": True})

    async def _shutdown(self, peer: Peer, msg: Message) -> None:
        self.reply(peer, msg, {"stopping": True})
        self.stopping.set()


class _Busy(TokintError):
    code = "busy"


class _UnknownRequest(TokintError):
    code = "unknown_request"


class _TooMany(TokintError):
    code = "too_many_requests"


class _ShuttingDown(TokintError):
    code = "shutting_down"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
