"""The asyncio client for tokintd, and the one implementation of the protocol on the client side:
``AsyncClient`` (the socket, its reader and heartbeat tasks, requests and their replies) and
``AsyncGeneration`` (one generation's event stream). ``client.Client`` runs one of these on a thread
of its own.

A generation is cancelled on the daemon when it is closed, dropped unfinished, or when the task
awaiting its next event is cancelled; while any are in flight heartbeats go out every
``HEARTBEAT_INTERVAL_S``, and a daemon silent for ``DAEMON_SILENCE_S`` raises ``DaemonUnavailable``.
Non-loopback addresses use CURVE (``_setup_curve_client``).
"""
from __future__ import annotations

import asyncio
import time
import weakref
from pathlib import Path
from typing import Any, AsyncIterator, Optional, Sequence, Union

import zmq
import zmq.asyncio

from .addresses import client_address, curve_dir as default_curve_dir, needs_curve
from .errors import ConfigError, DaemonUnavailable, TokintError, error_from_code
from .events import ChatMessage, GenerationRequest, StreamEvent, stream_event_from_wire, with_pair_defaults
from .status import DaemonStatus, PairListing
from .wire import HEARTBEAT_INTERVAL_S, Message, ProtocolError

DAEMON_SILENCE_S = 5.0  # no message at all from the daemon for this long while streaming: it is gone (as HEARTBEAT_TIMEOUT_S)
DEFAULT_TIMEOUT_S = 10.0
LOAD_TIMEOUT_S = 300.0


class AsyncClient:
    """An asyncio client. Use as ``async with AsyncClient() as client:``.

    ``curve_dir`` (a folder with server.key and client.key_secret) turns on CURVE encryption and
    authentication; it is on by default for non-loopback addresses, with keys from TOKINT_HOME/curve.
    """

    def __init__(self, address: Optional[str] = None, *, timeout: float = DEFAULT_TIMEOUT_S, curve_dir: Optional[Path] = None):
        self.address = client_address(address)
        self.timeout = timeout
        self._curve_dir = curve_dir
        self._ctx: Optional[zmq.asyncio.Context] = None
        self._sock: Optional[zmq.asyncio.Socket] = None
        self._routes: dict[str, asyncio.Queue] = {}
        self._streams: set[str] = set()
        self._tasks: list[asyncio.Task] = []
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._sends: set[asyncio.Future] = set()  # fire-and-forget cancels still being sent
        self.last_heard = 0.0

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- connection ------------------------------------------------------------------------
    def _connect(self) -> zmq.asyncio.Socket:
        if self._sock is not None:
            return self._sock
        if self.address.startswith("ipc://"):
            try:
                present = Path(self.address[len("ipc://"):]).exists()
            except PermissionError:
                raise DaemonUnavailable(f"no access to {self.address}: its folder belongs to another user") from None
            if not present:
                raise DaemonUnavailable(f"no tokintd at {self.address} (no socket file); start it with `tokintd`")
        self._ctx = zmq.asyncio.Context()
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if self._curve_dir is not None or needs_curve(self.address):
            _setup_curve_client(sock, self._curve_dir or default_curve_dir())
        try:
            sock.connect(self.address)
        except zmq.ZMQError as exc:
            sock.close()
            raise DaemonUnavailable(f"cannot connect to {self.address}: {exc}") from None
        self._sock = sock
        loop = self._loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read()), loop.create_task(self._heartbeats())]
        return sock

    @property
    def in_flight(self) -> frozenset[str]:
        """The ids of this client's generations that are sent and still read: heartbeats go out while any are."""
        return frozenset(self._streams)

    async def close(self) -> None:
        """Close the socket; generations still in flight are cancelled first."""
        linger = 0
        for generation_id in list(self._streams):
            self._drop(generation_id)
            linger = 200  # ms: let those cancels leave before the socket goes
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []
        if self._sock is not None:
            self._sock.close(linger=linger)
            self._sock = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    async def _read(self) -> None:
        assert self._sock is not None
        while True:
            frames = await self._sock.recv_multipart()
            self.last_heard = time.monotonic()
            try:
                message = Message.from_frames(frames)
            except ProtocolError:
                continue  # nothing sensible to do with a garbled message from the daemon
            route = self._routes.get(message.parent or "")
            if route is not None:
                route.put_nowait(message)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)
            if self._streams and self._sock is not None:
                await self._sock.send_multipart(Message("heartbeat").to_frames())

    def _drop(self, generation_id: str) -> None:
        """Stop reading and heartbeating for a generation and tell the daemon to cancel it, without
        waiting for the reply (call on the loop thread; ``_abandon`` gets there from any thread)."""
        self._streams.discard(generation_id)
        self._routes.pop(generation_id, None)  # its remaining events and the cancel's reply are dropped
        if self._sock is None or self._sock.closed:
            return
        try:
            sent = asyncio.ensure_future(self._sock.send_multipart(Message("cancel", {"id": generation_id}).to_frames()))
        except zmq.ZMQError:
            return  # the socket is going; the daemon cancels it when the heartbeats stop
        self._sends.add(sent)
        sent.add_done_callback(_forget_send(self._sends))

    def _abandon(self, generation_id: str) -> None:
        """``_drop`` from any thread (a finalizer's); never blocks, never runs a coroutine here."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # the client is closed: its socket and heartbeats are gone already
        try:
            loop.call_soon_threadsafe(self._drop, generation_id)
        except RuntimeError:
            pass  # the loop closed meanwhile

    async def _send(self, message: Message) -> asyncio.Queue:
        frames = message.to_frames()  # a string that is not text is InvalidParameter here, before anything is sent
        sock = self._connect()
        queue: asyncio.Queue = asyncio.Queue()
        self._routes[message.id] = queue
        await sock.send_multipart(frames)
        return queue

    async def request(self, mtype: str, content: Optional[dict[str, Any]] = None, timeout: Optional[float] = None) -> dict[str, Any]:
        """Send one request and return its reply's content; the daemon's errors are raised."""
        message = Message(mtype, content or {})
        queue = await self._send(message)
        wait = self.timeout if timeout is None else timeout
        try:
            reply = await asyncio.wait_for(queue.get(), wait)
        except asyncio.TimeoutError:
            raise DaemonUnavailable(
                f"no answer from tokintd at {self.address} within {wait:g} s; is it running? (start it with `tokintd`)"
            ) from None
        finally:
            self._routes.pop(message.id, None)
        if reply.type == "error":
            raise error_from_code(str(reply.content.get("code")), str(reply.content.get("message")))
        return reply.content

    # -- requests --------------------------------------------------------------------------
    async def hello(self, timeout: Optional[float] = None) -> dict[str, Any]:
        return await self.request("hello", timeout=timeout)

    async def status(self) -> DaemonStatus:
        return DaemonStatus.from_wire(await self.request("status"))

    async def list_pairs(self) -> list[PairListing]:
        content = await self.request("list_pairs")
        return [PairListing.from_wire(p) for p in content.get("pairs", [])]

    async def load_pair(self, pair: Optional[str] = None) -> dict[str, Any]:
        return await self.request("load_pair", {"pair": pair}, timeout=LOAD_TIMEOUT_S)

    async def unload_pair(self, pair: str) -> dict[str, Any]:
        return await self.request("unload_pair", {"pair": pair}, timeout=LOAD_TIMEOUT_S)

    async def cancel(self, generation_id: str) -> dict[str, Any]:
        return await self.request("cancel", {"id": generation_id})

    async def shutdown(self) -> dict[str, Any]:
        return await self.request("shutdown")

    def generate(self, prompt: str, pair: Optional[str] = None, **params: Any) -> "AsyncGeneration":
        """Start a generation; iterate the result for Queued, Started, TokenEvent ... Summary.

        Parameters are GenerationRequest's fields and are checked here, before anything is sent;
        those not given take the pair's defaults from the daemon's models.toml.
        """
        with_pair_defaults({}, params)  # what the daemon would refuse, refused before anything is sent
        request = GenerationRequest(prompt=prompt, pair=pair, **params)
        return AsyncGeneration(self, request, given={"prompt", "pair", *params})

    def chat(self, messages: Sequence[Union[ChatMessage, dict]], pair: Optional[str] = None, **params: Any) -> "AsyncGeneration":
        """Answer a conversation: ``messages`` are ChatMessages or {role, content} maps (system, user,
        assistant), ending with the user's. The stream is generate's; token events carry ``channel``.

        Assistant messages are the responses as they came (thinking included): each model's chat
        template decides what an earlier turn shows. The daemon reuses what its KV caches hold of the
        conversation (``reuse_prefix``). Parameters are generate's, plus ``chat_template_kwargs``
        (e.g. ``{"enable_thinking": False}``) and ``conversation_id`` (names it in the history).
        """
        with_pair_defaults({}, params)
        request = GenerationRequest(messages=tuple(messages), pair=pair, **params)
        return AsyncGeneration(self, request, given={"messages", "pair", *params})


class AsyncGeneration:
    """One generation's event stream. ``id`` names it for ``cancel``.

    Use as ``async with client.generate(...) as generation:`` to have it cancelled when the block
    is left early. It is cancelled too when it is dropped unfinished or when the task awaiting its
    next event is cancelled (as an async generator would be): to wait for an event with a timeout
    and go on afterwards, wrap ``__anext__`` in ``asyncio.shield``.
    """

    def __init__(self, client: AsyncClient, request: GenerationRequest, given: Optional[set[str]] = None):
        self.client = client
        self.request = request
        wire = request.to_wire()
        if given is not None:  # only what the caller set: the daemon fills in the pair's defaults
            wire = {k: v for k, v in wire.items() if k in given}
        self._message = Message("generate", wire)
        self.id = self._message.id
        self._queue: Optional[asyncio.Queue] = None
        self._finalizer: Optional[weakref.finalize] = None
        self.done = False

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __aenter__(self) -> "AsyncGeneration":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def submit(self) -> "AsyncGeneration":
        """Send the request now, before reading any event (to queue several at once). Iterating sends it too."""
        await self._start()
        return self

    async def _start(self) -> asyncio.Queue:
        if self._queue is None:
            self.client.last_heard = time.monotonic()
            self._queue = await self.client._send(self._message)
            self.client._streams.add(self.id)
            # dropped unfinished, it is cancelled; the finalizer holds the client, never this object
            self._finalizer = weakref.finalize(self, self.client._abandon, self.id)
            self._finalizer.atexit = False
        return self._queue

    async def __anext__(self) -> StreamEvent:
        if self.done:
            raise StopAsyncIteration
        try:
            return await self._next_event()
        except BaseException:
            if not self.done:  # the awaiting task was cancelled: nobody will read the rest
                self._abandon()
            raise

    async def _next_event(self) -> StreamEvent:
        queue = await self._start()
        while True:
            try:
                # fast path first: a busy stream has its next event waiting already
                message = queue.get_nowait() if not queue.empty() else await asyncio.wait_for(queue.get(), HEARTBEAT_INTERVAL_S)
            except asyncio.TimeoutError:
                if time.monotonic() - self.client.last_heard > DAEMON_SILENCE_S:
                    self._finish()
                    raise DaemonUnavailable(f"tokintd at {self.client.address} stopped answering") from None
                continue
            if message.type == "error":
                self._finish()
                raise error_from_code(str(message.content.get("code")), str(message.content.get("message")))
            event = stream_event_from_wire(message.type, message.content)
            if event is None:
                continue  # a newer daemon's event type: ignored, as the protocol says
            if event.type == "summary":
                self._finish()
            return event

    def _finish(self) -> None:
        self.done = True
        self.client._streams.discard(self.id)
        self.client._routes.pop(self.id, None)
        if self._finalizer is not None:
            self._finalizer.detach()

    def _abandon(self) -> None:
        """End it here and have the daemon cancel it, without waiting for the reply."""
        started = self._queue is not None
        self._finish()
        if started:
            self.client._drop(self.id)

    async def cancel(self) -> None:
        """Ask the daemon to stop; the stream then ends with a summary whose finish reason is cancelled."""
        if not self.done:
            try:
                await self.client.cancel(self.id)
            except TokintError:
                pass  # it ended on its own meanwhile

    async def aclose(self) -> None:
        """Cancel it if it is still running and stop reading it; iterating it afterwards ends at once."""
        if not self.done and self._queue is not None:
            await self.cancel()
        self._finish()



def _forget_send(pending: set) -> Any:
    def done(sent: asyncio.Future) -> None:
        pending.discard(sent)
        if not sent.cancelled():
            sent.exception()  # retrieved: a failed fire-and-forget send is not worth a warning
    return done


def _setup_curve_client(sock: zmq.Socket, folder: Path) -> None:
    import zmq.auth

    server_public = folder / "server.key"
    client_secret = folder / "client.key_secret"
    if not (server_public.is_file() and client_secret.is_file()):
        raise ConfigError(
            f"tokintd over TCP needs CURVE keys, and {folder} has none: on the daemon's machine they are in its "
            f"TOKINT_HOME/curve (made when it first listens on TCP); elsewhere copy server.key and client.key_secret "
            f"from there into {folder} (or set TOKINT_HOME), or use the ipc socket"
        )
    public, secret = zmq.auth.load_certificate(str(client_secret))
    server, _ = zmq.auth.load_certificate(str(server_public))
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = server


__all__ = ["AsyncClient", "AsyncGeneration"]
