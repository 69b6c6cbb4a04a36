"""tokintd's OpenAI-compatible HTTP API: Starlette, served by uvicorn on the daemon's own loop.

    POST /v1/chat/completions   POST /v1/completions   GET /v1/models   GET /health

An HTTP request is a peer of the scheduler like a ZeroMQ client (``Daemon.submit``): the messages
the scheduler sends it go into a queue its response reads, so HTTP and ZeroMQ clients share the
pair queues, the per-client limit (an HTTP client is its bearer key, else its address) and the
history. The response's status waits for the generation's first token (or its error), so an
error that comes from the worker (prompt too long, loading failed) still gets its own status.
A client that goes away has its generation cancelled at once. The contract: docs/HTTP.md.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Optional, Union

import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tokint_local import __version__
from tokint_local.config import PairEntry
from tokint_local.errors import ConfigError, TokintError
from tokint_local.events import Summary, TokenEvent
from tokint_local.wire import Message

from .http_models import ChatCompletionRequest, CompletionRequest, ErrorBody, ErrorDetail
from .http_openai import (
    DONE, STATUS_BY_CODE, ChatShape, CompletionShape, chat_fields, completion_fields, error_type, model_card,
    model_list, resolve_model, sse,
)
from .scheduler import Job
from .security import HttpBind, key_matches, load_http_keys

if TYPE_CHECKING:
    from .server import Daemon

log = logging.getLogger("tokintd.http")

MAX_BODY_BYTES = 1 << 20  # as a ZeroMQ message: 1 MiB
STOP_TIMEOUT_S = 2.0  # open connections get this long to finish once generations have ended
Shape = Union[ChatShape, CompletionShape]
_PARAM = re.compile(r"^([A-Za-z_][\w.\[\]]*): ")


@dataclass(frozen=True)
class HttpSettings:
    bind: HttpBind
    keys_required: bool  # security.check_http_bind decided
    keys_path: Path


class HttpPeer:
    """One HTTP request as a scheduler peer; what the scheduler sends it waits in ``messages``."""

    __slots__ = ("client", "messages")

    def __init__(self, client: str):
        self.client = client
        self.messages: asyncio.Queue[Message] = asyncio.Queue()

    def deliver(self, message: Message) -> None:
        self.messages.put_nowait(message)


class ApiError(Exception):
    """An error answered in the OpenAI shape with its HTTP status."""

    def __init__(self, status: int, message: str, code: Optional[str] = None, param: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    @classmethod
    def from_tokint(cls, code: str, message: str) -> "ApiError":
        param = _PARAM.match(message) if code == "invalid_parameter" else None
        code = "model_not_found" if code == "unknown_pair" else code
        return cls(STATUS_BY_CODE.get(code, 500), message, code, param.group(1) if param else None)

    def body(self) -> ErrorBody:
        return ErrorBody(error=ErrorDetail(message=self.message, type=error_type(self.status), param=self.param, code=self.code))

    def response(self) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return Response(self.body().model_dump_json(), self.status, headers, media_type="application/json")


class KeyRing:
    """The bearer keys, read again whenever the keys file changes (``tokintd keygen --http`` while running)."""

    def __init__(self, path: Path):
        self.path = path
        self._stamp: Optional[tuple[int, ...]] = None
        self._keys: frozenset[str] = frozenset()

    def keys(self) -> frozenset[str]:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_mode, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            try:
                self._keys = load_http_keys(self.path)
            except ConfigError as exc:  # made readable by others while running: trust none of them
                log.error("%s", exc)
                self._keys = frozenset()
            self._stamp = stamp
        return self._keys


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # the daemon's loop owns SIGINT and SIGTERM
        yield


class HttpApi:
    def __init__(self, daemon: "Daemon", settings: HttpSettings):
        self.daemon, self.settings = daemon, settings
        self.keyring = KeyRing(settings.keys_path)
        self.socket: Optional[socket.socket] = None
        self._server: Optional[_Server] = None
        self._task: Optional[asyncio.Task] = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/models/{model:path}", self.model, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
            ],
            exception_handlers={ApiError: _api_error, TokintError: _tokint_error, ValidationError: _validation_error,
                                HTTPException: _http_error, Exception: _internal_error},
        )

    # -- lifecycle -------------------------------------------------------------------------
    def bind(self) -> None:
        """Listen before serving, so a port in use is a ConfigError and not uvicorn's sys.exit."""
        bind = self.settings.bind
        family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind.host, bind.port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot serve HTTP on {bind.url}: {exc.strerror or exc} (another program there? "
                              "pass another --http HOST:PORT)") from None
        sock.set_inheritable(False)
        self.socket = sock
        host, port = sock.getsockname()[:2]
        log.info("serving the OpenAI-compatible API on %s (keys %s)", HttpBind(host, port).url,
                 "required" if self.settings.keys_required else "not required")

    def start(self) -> None:
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off", http="h11", ws="none",
                                timeout_graceful_shutdown=STOP_TIMEOUT_S, server_header=False)
        self._server = _Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[self.socket]), name="http")

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, STOP_TIMEOUT_S + 1.0)
        except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
            log.debug("the HTTP server did not stop cleanly", exc_info=True)

    # -- endpoints -------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        """Open to everyone: says only whether tokintd is up and its worker's state."""
        closing = self.daemon.scheduler.closing
        body = {"status": "shutting_down" if closing else "ok", "worker": self.daemon.scheduler.worker.status().state,
                "version": __version__}
        return Response(json.dumps(body), 503 if closing else 200, media_type="application/json")

    async def models(self, request: Request) -> Response:
        self.client_of(request)
        return _json(model_list(self.daemon.models).model_dump_json())

    async def model(self, request: Request) -> Response:
        self.client_of(request)
        return _json(model_card(self.daemon.models, request.path_params["model"]).model_dump_json())

    async def chat_completions(self, request: Request) -> Response:
        client = self.client_of(request)
        req = ChatCompletionRequest.model_validate(await _read_json(request))
        entry, mode = resolve_model(self.daemon.models, req.model)
        fields = chat_fields(req, mode)
        shape = ChatShape(uuid.uuid4().hex, req.model, entry.name, mode, bool(req.logprobs))
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return await self.generate(request, client, entry, fields, shape, bool(req.stream), include_usage)

    async def completions(self, request: Request) -> Response:
        client = self.client_of(request)
        req = CompletionRequest.model_validate(await _read_json(request))
        entry, mode = resolve_model(self.daemon.models, req.model)
        fields = completion_fields(req, mode)
        shape = CompletionShape(uuid.uuid4().hex, req.model, entry.name, mode, req.logprobs is not None)
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return await self.generate(request, client, entry, fields, shape, bool(req.stream), include_usage)

    # -- who is asking ---------------------------------------------------------------------
    def client_of(self, request: Request) -> str:
        """The client a request counts as (its key, else its address); 401 when a key is required."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        if token and key_matches(token, self.keyring.keys()):
            return "key:" + hashlib.sha256(token.encode()).hexdigest()[:16]
        if self.settings.keys_required:
            raise ApiError(401, "a valid API key is required: send `Authorization: Bearer KEY` with a key from "
                                "the daemon's http_keys file (`tokintd keygen --http` writes one)", "invalid_api_key")
        return "addr:" + (request.client.host if request.client else "?")

    # -- a generation ----------------------------------------------------------------------
    async def generate(self, request: Request, client: str, entry: PairEntry, fields: dict, shape: Shape,
                       stream: bool, include_usage: bool) -> Response:
        peer = HttpPeer(client)
        job = self.daemon.submit(peer, shape.job_id, entry, {**fields, "pair": entry.name})
        watch = asyncio.get_running_loop().create_task(self._cancel_when_gone(request, job))
        streaming = False
        try:
            first = await _next_of(peer, ("started", "token", "summary", "error"))
            if first.type == "error" or _shut_down(first):
                raise _ended_in_error(first)
            if stream:
                watch.cancel()  # from here StreamingResponse notices a disconnect and closes _stream
                streaming = True
                return _EventStream(self._stream(peer, shape, first, include_usage), lambda: self._closed(job))
            events: list[TokenEvent] = []
            message = first
            while message.type not in ("summary", "error"):
                if message.type == "token":
                    events.append(TokenEvent.from_wire(message.content))
                message = await peer.messages.get()
            if message.type == "error" or _shut_down(message):
                raise _ended_in_error(message)
            return _json(shape.whole(Summary.from_wire(message.content), events).model_dump_json())
        finally:
            watch.cancel()
            if not streaming and not job.ended:
                self.daemon.scheduler.cancel(job.id)

    async def _cancel_when_gone(self, request: Request, job: Job) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        if not job.ended:
            log.info("HTTP client of generation %s went away; cancelling it", job.id)
            self.daemon.scheduler.cancel(job.id)

    def _closed(self, job: Job) -> None:
        if not job.ended:  # the client went away mid-stream (or the server is stopping): free the pair
            log.info("HTTP stream of generation %s closed early; cancelling it", job.id)
            self.daemon.scheduler.cancel(job.id)

    @staticmethod
    async def _stream(peer: HttpPeer, shape: Shape, first: Message, include_usage: bool) -> AsyncIterator[str]:
        """Server-sent events: the opening chunk, a chunk per token, the closing chunk(s), ``[DONE]``.
        Messages that arrived together go out in one write."""
        pending = [first]
        yield shape.opening()
        while True:
            if not pending:
                pending.append(await peer.messages.get())
            while not peer.messages.empty():
                pending.append(peer.messages.get_nowait())
            out = []
            for message in pending:
                if message.type == "token":
                    out.append(shape.token(TokenEvent.from_wire(message.content)))
                elif message.type == "summary" and not _shut_down(message):
                    yield "".join(out) + shape.closing(Summary.from_wire(message.content), include_usage)
                    return
                elif message.type in ("summary", "error"):  # the status is sent: the error goes in the stream
                    yield "".join(out) + sse(_ended_in_error(message).body().model_dump_json()) + DONE
                    return
            pending = []
            if out:
                yield "".join(out)


class _EventStream(StreamingResponse):
    """A server-sent event stream that calls ``on_close`` however it ends, even before its first event."""

    def __init__(self, events: AsyncIterator[str], on_close):
        super().__init__(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


async def _next_of(peer: HttpPeer, types: tuple[str, ...]) -> Message:
    while True:
        message = await peer.messages.get()
        if message.type in types:
            return message


def _shut_down(message: Message) -> bool:
    return message.type == "summary" and message.content.get("finish_reason") == "shutdown"


def _ended_in_error(message: Message) -> ApiError:
    if message.type == "summary":
        return ApiError(503, "tokintd is shutting down; the generation was stopped", "shutting_down")
    return ApiError.from_tokint(message.content.get("code", "internal"), message.content.get("message", ""))


async def _read_json(request: Request) -> object:
    size = int(request.headers.get("content-length") or 0)
    chunks, seen = [], 0
    if size <= MAX_BODY_BYTES:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > MAX_BODY_BYTES:
                break
            chunks.append(chunk)
    if size > MAX_BODY_BYTES or seen > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body is over {MAX_BODY_BYTES} bytes", "too_large")
    try:
        return json.loads(b"".join(chunks))
    except ValueError as exc:
        raise ApiError(400, f"the request body is not JSON: {exc}", "malformed") from None


def _json(body: str, status: int = 200) -> Response:
    return Response(body, status, media_type="application/json")


async def _api_error(request: Request, exc: ApiError) -> Response:
    return exc.response()


async def _tokint_error(request: Request, exc: TokintError) -> Response:
    return ApiError.from_tokint(exc.code, str(exc)).response()


async def _validation_error(request: Request, exc: ValidationError) -> Response:
    first = exc.errors()[0]
    param = ".".join(str(part) for part in first["loc"]) or None
    return ApiError(400, f"{param}: {first['msg']}" if param else first["msg"], "invalid_parameter", param).response()


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("HTTP %s %s failed", request.method, request.url.path, exc_info=exc)
    return ApiError(500, f"internal error: {type(exc).__name__}: {exc}", "internal").response()


async def _http_error(request: Request, exc: HTTPException) -> Response:
    message = {404: f"no such endpoint: {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
    return ApiError(exc.status_code, message.get(exc.status_code, str(exc.detail)),
                    "not_found" if exc.status_code == 404 else None).response()
