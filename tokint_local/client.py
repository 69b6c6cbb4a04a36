"""Clients for tokintd: ``AsyncClient`` (asyncio) and ``Client`` (blocking, for scripts).

    from tokint_local import Client
    with Client() as client:
        for event in client.generate("Write a haiku about KL divergence", budget=4):
            ...

Both send heartbeats on their own while generations are in flight, so a slow consumer keeps its
generation; a killed one has it cancelled by the daemon. A generation nobody reads any more is
cancelled too: closed (``with``, ``close()``), dropped (``break`` and the object gone, an exception
in the loop), or, for ``AsyncGeneration``, the task awaiting its next event cancelled. A daemon
that stops answering raises ``DaemonUnavailable`` instead of hanging.

Here: the blocking ``Client`` and ``Generation``. ``AsyncClient`` and ``AsyncGeneration`` (the protocol,
which ``Client`` runs on a thread of its own) are in client_async.py and importable from here too.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

from .client_async import AsyncClient, AsyncGeneration
from .client_async import DAEMON_SILENCE_S, DEFAULT_TIMEOUT_S, LOAD_TIMEOUT_S  # noqa: F401  (re-exported; set them on client_async)
from .errors import DaemonUnavailable
from .events import ChatMessage, StreamEvent
from .status import DaemonStatus, PairListing


class Client:
    """A blocking client for scripts; its socket lives on a background thread of its own."""

    def __init__(self, address: Optional[str] = None, *, timeout: float = DEFAULT_TIMEOUT_S, curve_dir: Optional[Path] = None):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tokint-client", daemon=True)
        self._thread.start()
        self._async = AsyncClient(address, timeout=timeout, curve_dir=curve_dir)
        self.address = self._async.address

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self._async.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()

    @property
    def in_flight(self) -> frozenset[str]:
        """The ids of this client's generations that are sent and still read: heartbeats go out while any are."""
        return self._async.in_flight

    def hello(self, timeout: Optional[float] = None) -> dict[str, Any]:
        return self._run(self._async.hello(timeout))

    def status(self) -> DaemonStatus:
        return self._run(self._async.status())

    def list_pairs(self) -> list[PairListing]:
        return self._run(self._async.list_pairs())

    def load_pair(self, pair: Optional[str] = None) -> dict[str, Any]:
        return self._run(self._async.load_pair(pair))

    def unload_pair(self, pair: str) -> dict[str, Any]:
        return self._run(self._async.unload_pair(pair))

    def cancel(self, generation_id: str) -> dict[str, Any]:
        return self._run(self._async.cancel(generation_id))

    def shutdown(self) -> dict[str, Any]:
        return self._run(self._async.shutdown())

    def generate(self, prompt: str, pair: Optional[str] = None, **params: Any) -> "Generation":
        return Generation(self, self._async.generate(prompt, pair, **params))

    def chat(self, messages: Sequence[Union[ChatMessage, dict]], pair: Optional[str] = None, **params: Any) -> "Generation":
        """Answer a conversation (see AsyncClient.chat); the same blocking event stream as generate."""
        return Generation(self, self._async.chat(messages, pair, **params))


class Generation:
    """A blocking iterator over one generation's events. ``id`` names it for ``cancel``.

    ``with client.generate(...) as generation:`` cancels it when the block is left early; dropping
    it unfinished (``break`` and the object gone, an exception in the loop) cancels it too.
    """

    def __init__(self, client: Client, stream: AsyncGeneration):
        self._client = client
        self._stream = stream
        self.id = stream.id
        self.request = stream.request
        self._pending: Optional[concurrent.futures.Future] = None

    def __iter__(self) -> Iterator[StreamEvent]:
        return self

    def __enter__(self) -> "Generation":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def submit(self) -> "Generation":
        """Send the request now, before reading any event (to queue several at once). Iterating sends it too."""
        self._client._run(self._stream.submit())
        return self

    def __next__(self) -> StreamEvent:
        # A wait cut short (Ctrl+C) leaves its request for the next event running: the next call takes
        # that event, so nothing is lost, the summary least of all.
        if self._pending is None:
            self._pending = asyncio.run_coroutine_threadsafe(self._stream.__anext__(), self._client._loop)
        try:
            event = self._pending.result()
        except StopAsyncIteration:
            self._pending = None
            raise StopIteration from None
        except KeyboardInterrupt:  # the read goes on: cancel() and read on for the summary, or drop it
            raise
        except BaseException:
            self._pending = None
            raise
        self._pending = None
        return event

    @property
    def done(self) -> bool:
        return self._stream.done

    def cancel(self) -> None:
        self._client._run(self._stream.cancel())

    def close(self) -> None:
        """Cancel it if it is still running and stop reading it."""
        if self._client._loop.is_running():
            self._client._run(self._stream.aclose())


__all__ = ["AsyncClient", "AsyncGeneration", "Client", "Generation", "DaemonUnavailable"]
