"""Protocol versions: tokintd speaks version 2 and still serves version-1 clients, answering each
message in the version it came in (a version-1 client refuses any other)."""
import msgpack
import zmq


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


class RawClient:
    """A DEALER socket speaking the wire format by hand, as a program written against version 1 would."""

    def __init__(self, address):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(address)

    def send(self, mid, mtype, content, version):
        self.sock.send_multipart([pack({"id": mid, "type": mtype, "version": version, "parent": None}), pack(content)])

    def receive(self, timeout_ms=5000):
        assert self.sock.poll(timeout_ms), "no reply"
        header, content = self.sock.recv_multipart()
        return msgpack.unpackb(header, raw=False), msgpack.unpackb(content, raw=False)

    def reply_to(self, mid):
        """The next message answering ``mid`` (heartbeat replies sent earlier are skipped)."""
        while True:
            header, content = self.receive()
            if header["parent"] == mid:
                return header, content

    def stream(self, mid, version):
        """Every message answering ``mid`` up to its summary or error (heartbeats keep the generation alive)."""
        out = []
        while True:
            self.send(f"hb-{len(out)}", "heartbeat", {}, version)
            header, content = self.receive()
            if header["type"] == "heartbeat_reply":
                continue
            assert header["parent"] == mid
            out.append((header, content))
            if header["type"] in ("summary", "error"):
                return out

    def close(self):
        self.sock.close()


def test_a_version_1_client_is_served_in_version_1(shared_daemon):
    client = RawClient(shared_daemon.address)
    try:
        client.send("h1", "hello", {}, version=1)
        header, content = client.receive()
        assert header["type"] == "hello_reply" and header["version"] == 1 and header["parent"] == "h1"
        assert content["protocol_versions"] == [1, 2]
        client.send("g1", "generate", {"prompt": "hello", "max_tokens": 5}, version=1)
        stream = client.stream("g1", 1)
        assert {h["version"] for h, _ in stream} == {1}
        kinds = [h["type"] for h, _ in stream]
        assert kinds[-1] == "summary" and kinds.count("token") == 5 == stream[-1][1]["n_tokens"]
        tokens = [c for h, c in stream if h["type"] == "token"]
        assert all({"position", "token_id", "text", "source", "divergence"} <= set(t) for t in tokens)
        client.send("e1", "generate", {"prompt": "hi", "threshold": "high"}, version=1)
        header, content = client.reply_to("e1")
        assert header == {**header, "type": "error", "version": 1, "parent": "e1"} and content["code"] == "invalid_parameter"
    finally:
        client.close()


def test_a_malformed_version_1_message_is_answered_in_version_1(shared_daemon):
    client = RawClient(shared_daemon.address)
    try:
        client.sock.send_multipart([pack({"id": "m1", "type": "hello", "version": 1, "parent": None}), b"\xc1"])
        header, content = client.receive()
        assert header["type"] == "error" and header["version"] == 1 and content["code"] == "malformed"
    finally:
        client.close()


def test_a_version_2_client_gets_version_2_and_can_send_messages(shared_daemon):
    client = RawClient(shared_daemon.address)
    try:
        client.send("g2", "generate", {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}, version=2)
        stream = client.stream("g2", 2)
        assert {h["version"] for h, _ in stream} == {2} and stream[-1][0]["type"] == "summary"
        client.send("h3", "hello", {}, version=3)
        header, content = client.reply_to("h3")
        assert header["type"] == "error" and content["code"] == "unsupported_version"
        assert "speaks 1 and 2" in content["message"]
    finally:
        client.close()
