"""The daemon's watchdog asks its sockets whether messages wait unread. On a zmq.asyncio socket that
question must not swallow the loop's wake-up: ZeroMQ's file descriptor is edge-triggered, and a
message whose edge is consumed sits unread until something else touches the socket (in CI, the
fuzzer's and a TUI client's requests went unanswered for seconds)."""
import asyncio
import time
from types import SimpleNamespace

import zmq
import zmq.asyncio

from daemon.server import Daemon


async def test_asking_for_unread_messages_keeps_the_reader_awake(tmp_path):
    address = f"ipc://{tmp_path}/wake.sock"
    actx, ctx = zmq.asyncio.Context(), zmq.Context()
    router = actx.socket(zmq.ROUTER)
    router.bind(address)
    dealer = ctx.socket(zmq.DEALER)  # a plain socket: sending does not involve this loop
    dealer.connect(address)
    try:
        reading = asyncio.ensure_future(router.recv_multipart())
        await asyncio.sleep(0.05)  # the reader now waits on the socket's file descriptor
        dealer.send_multipart([b"header", b"content"])
        # The loop is busy (this thread sleeps): the message arrives, the loop has not looked yet; the
        # watchdog's question is asked meanwhile, until it sees the message waiting.
        deadline = time.monotonic() + 5.0
        while not Daemon._unread(SimpleNamespace(sockets=[router])):
            assert time.monotonic() < deadline, "the message never arrived"
            time.sleep(0.02)
        frames = await asyncio.wait_for(reading, 2.0)  # read at once, not when something else comes
        assert frames[1:] == [b"header", b"content"]
    finally:
        dealer.close(0)
        router.close(0)
        ctx.term()
        actx.term()
