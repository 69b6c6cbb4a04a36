"""A generation nobody reads any more is cancelled: left with break and dropped, closed, ended by an
exception in the consumer's loop, or its asyncio task cancelled. Each case starts a 6,000-token
generation on the tiny-long pair (many seconds of work if it leaked) and then checks, through the
public client API only, that the daemon's job ends at once and the next request does not wait."""
import asyncio
import contextlib
import time

from tokint_local.client import AsyncClient, Client
from tokint_local.events import Started, Summary, TokenEvent
from tokint_local.wire import HEARTBEAT_INTERVAL_S, HEARTBEAT_TIMEOUT_S

LONG = dict(pair="tiny-long", max_tokens=6000)
ENDS_WITHIN_S = 2.0  # a behaviour bound (the daemon's heartbeat timeout is 5 s), not a speed figure


def wait_until_gone(status, generation_id: str) -> float:
    """Seconds until ``generation_id`` is no longer active on the daemon; fails past the bound."""
    began = time.monotonic()
    while any(a.id == generation_id for a in status().active):
        assert time.monotonic() - began < ENDS_WITHIN_S, f"generation {generation_id} still running"
        time.sleep(0.02)
    return time.monotonic() - began


async def async_wait_until_gone(client: AsyncClient, generation_id: str) -> float:
    began = time.monotonic()
    while any(a.id == generation_id for a in (await client.status()).active):
        assert time.monotonic() - began < ENDS_WITHIN_S, f"generation {generation_id} still running"
        await asyncio.sleep(0.02)
    return time.monotonic() - began


def next_request_waited(client: Client) -> float:
    """How long the next request on the pair waited before it started, as the daemon tells it."""
    events = list(client.generate("hello", pair="tiny-long", max_tokens=3))
    started = next(e for e in events if isinstance(e, Started))
    assert isinstance(events[-1], Summary) and events[-1].n_tokens == 3
    return started.waited_s


def read_until_streaming(generation) -> None:
    for event in generation:
        if isinstance(event, TokenEvent) and event.position == 3:
            return


def test_break_and_del_cancels_the_generation(daemon):
    with Client(daemon.address) as c:
        c.load_pair("tiny-long")
        generation = c.generate("hello", **LONG)
        for event in generation:
            if isinstance(event, TokenEvent) and event.position == 3:
                break
        generation_id = generation.id
        assert [a.id for a in c.status().active] == [generation_id]
        del generation
        gone = wait_until_gone(c.status, generation_id)
        assert c.in_flight == frozenset()  # no heartbeats for a stream nobody holds
        waited = next_request_waited(c)
        print(f"break + del: the job ended after {gone:.2f} s; the next request waited {waited:.3f} s")
        assert waited < ENDS_WITHIN_S


def test_leaving_a_with_block_cancels_the_generation(daemon):
    with Client(daemon.address) as c:
        c.load_pair("tiny-long")
        with c.generate("hello", **LONG) as generation:
            read_until_streaming(generation)
        assert generation.done
        wait_until_gone(c.status, generation.id)
        assert list(generation) == []  # a closed generation has nothing more to read
        assert next_request_waited(c) < ENDS_WITHIN_S


def test_an_exception_in_the_consumers_loop_cancels_the_generation(daemon):
    ids = []

    def consume(client: Client) -> None:
        for event in client.generate("hello", **LONG):
            if isinstance(event, Started):
                ids.extend(a.id for a in client.status().active)
            if isinstance(event, TokenEvent) and event.position == 3:
                raise ValueError("the consumer failed")

    with Client(daemon.address) as c:
        c.load_pair("tiny-long")
        try:
            consume(c)
        except ValueError:
            pass  # a script that reports the error and goes on
        assert len(ids) == 1
        gone = wait_until_gone(c.status, ids[0])
        assert c.in_flight == frozenset()
        waited = next_request_waited(c)
        print(f"exception in the loop: the job ended after {gone:.2f} s; the next request waited {waited:.3f} s")
        assert waited < ENDS_WITHIN_S


def test_a_generation_dropped_while_another_waits_is_still_cancelled(daemon):
    """Heartbeats go on for the queued request, so only the client's own cancel stops the dropped one."""
    with Client(daemon.address) as a, Client(daemon.address) as b:
        a.load_pair("tiny-long")
        dropped = a.generate("hello", **LONG)
        read_until_streaming(dropped)
        dropped_id = dropped.id
        waiting = a.generate("hello", pair="tiny-long", max_tokens=5).submit()
        del dropped
        wait_until_gone(b.status, dropped_id)
        assert a.in_flight == frozenset({waiting.id})  # still heartbeating for the one it holds
        events = list(waiting)
        assert isinstance(events[-1], Summary) and events[-1].n_tokens == 5
        assert a.in_flight == frozenset()


async def test_cancelling_the_consuming_task_cancels_the_generation(daemon):
    async with AsyncClient(daemon.address) as c:
        await c.load_pair("tiny-long")
        generation = c.generate("hello", **LONG)
        streaming = asyncio.Event()

        async def consume() -> None:
            async for event in generation:
                if isinstance(event, TokenEvent) and event.position == 3:
                    streaming.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(streaming.wait(), 30)
        assert [a.id for a in (await c.status()).active] == [generation.id]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gone = await async_wait_until_gone(c, generation.id)
        assert generation.done and c.in_flight == frozenset()
        events = [e async for e in c.generate("hello", pair="tiny-long", max_tokens=3)]
        waited = next(e for e in events if isinstance(e, Started)).waited_s
        print(f"task cancelled: the job ended after {gone:.2f} s; the next request waited {waited:.3f} s")
        assert waited < ENDS_WITHIN_S


async def test_leaving_an_async_with_block_cancels_the_generation(daemon):
    async with AsyncClient(daemon.address) as c:
        await c.load_pair("tiny-long")
        async with c.generate("hello", **LONG) as generation:
            async for event in generation:
                if isinstance(event, TokenEvent) and event.position == 3:
                    break
        await async_wait_until_gone(c, generation.id)
        assert c.in_flight == frozenset()


def test_closing_the_client_cancels_what_it_was_streaming(daemon):
    with Client(daemon.address) as watcher:
        c = Client(daemon.address)
        c.load_pair("tiny-long")
        generation = c.generate("hello", **LONG)
        read_until_streaming(generation)
        c.close()
        gone = wait_until_gone(watcher.status, generation.id)
        print(f"client closed mid-stream: the job ended after {gone:.2f} s")
        # told by the client: the daemon's watchdog could not have noticed the silence yet
        assert gone < HEARTBEAT_TIMEOUT_S - HEARTBEAT_INTERVAL_S
        assert next_request_waited(watcher) < ENDS_WITHIN_S
