"""A real HTTP server on 127.0.0.1 that serves files the way the Hugging Face hub's file
endpoints do (HEAD/GET /{repo}/resolve/{revision}/{file}, ETag and X-Repo-Commit headers, Range
requests, X-Error-Code on 404), for pull tests pointed at it with HF_ENDPOINT."""
from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class FakeHub:
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, filename) -> content
    cut_after: Optional[int] = None  # drop the connection after this many bytes of the next GET
    stall_after: Optional[int] = None  # send this many bytes of the next GET, then hang until released
    release: threading.Event = field(default_factory=threading.Event)
    stalled: threading.Event = field(default_factory=threading.Event)
    requests: list[tuple[str, str, Optional[str]]] = field(default_factory=list)  # (method, path, Range)
    gated: set[str] = field(default_factory=set)
    corrupt: bool = False  # serve bytes that do not match the ETag (a broken proxy, a bad disk)

    def add(self, repo: str, filename: str, content: bytes) -> str:
        self.files[(repo, filename)] = content
        return hashlib.sha256(content).hexdigest()

    def start(self) -> str:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _target(self):
                hub.requests.append((self.command, self.path, self.headers.get("Range")))
                m = re.match(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$", self.path.split("?")[0])
                if not m:
                    return self._error(404, "RepoNotFound", "no such route")
                repo, file = m.group("repo"), m.group("file")
                if repo in hub.gated:
                    return self._error(403, "GatedRepo", "gated")
                if not any(r == repo for r, _ in hub.files):
                    return self._error(404, "RepoNotFound", "Repository not found")
                if m.group("rev") not in ("main", COMMIT):
                    return self._error(404, "RevisionNotFound", "Revision not found")
                content = hub.files.get((repo, file))
                if content is None:
                    return self._error(404, "EntryNotFound", "Entry not found")
                return content

            def _error(self, status, code, message):
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", message)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None

            def _headers(self, content: bytes, status=200, start=0):
                self.send_response(status)
                etag = hashlib.sha256(content).hexdigest()
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Linked-Etag", f'"{etag}"')
                self.send_header("X-Linked-Size", str(len(content)))
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(content) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
                self.end_headers()

            def do_HEAD(self):
                content = self._target()
                if content is not None:
                    self._headers(content)

            def do_GET(self):
                content = self._target()
                if content is None:
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                self._headers(content, 206 if start else 200, start)
                body = content[start:]
                if hub.corrupt:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                if hub.stall_after is not None:
                    stall, hub.stall_after = hub.stall_after, None
                    self.wfile.write(body[:stall])
                    self.wfile.flush()
                    hub.stalled.set()
                    hub.release.wait(30)
                    self.close_connection = True
                    return
                if hub.cut_after is not None:
                    cut, hub.cut_after = hub.cut_after, None
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
