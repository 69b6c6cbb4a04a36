"""Nothing but plain data comes off the wire: every msgpack extension type, the built-in timestamp
included, is `malformed`, as docs/PROTOCOL.md says."""
import msgpack
import pytest

from test_daemon import header, pack, raw_request
from tokint_local.client import Client
from tokint_local.wire import Message, ProtocolError

STAMP = msgpack.Timestamp(1_700_000_000, 5)
CASES = {
    "timestamp in the content": [header("generate"), pack({"prompt": "hi", "seed": STAMP})],
    "timestamp in a list": [header("generate"), pack({"prompt": "hi", "stop": ["a", STAMP]})],
    "timestamp as the header id": [pack({"id": STAMP, "type": "hello", "version": 1, "parent": None}), pack({})],
    "a 96-bit timestamp": [header("hello"), pack({"when": msgpack.Timestamp(2**40, 999)})],
    "an application extension": [header("hello"), pack({"x": msgpack.ExtType(5, b"data")})],
    "a string that is not UTF-8": [header("generate"), b"\x81\xa6prompt\xa4caf\xe9"],
}


@pytest.mark.parametrize("frames", CASES.values(), ids=CASES.keys())
def test_extension_types_are_malformed(frames):
    with pytest.raises(ProtocolError) as caught:
        Message.from_frames(frames)
    assert caught.value.code == "malformed"


@pytest.mark.parametrize("frames", CASES.values(), ids=CASES.keys())
def test_the_daemon_answers_malformed(shared_daemon, frames):
    head, content = raw_request(shared_daemon.address, frames)
    assert head["type"] == "error" and content["code"] == "malformed", content
    with Client(shared_daemon.address) as c:
        assert c.hello()["daemon"] == "tokintd"
