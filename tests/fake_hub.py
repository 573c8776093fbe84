"""A tiny imitation of the Hugging Face hub for download tests: a threaded HTTP server on 127.0.0.1.

huggingface_hub 2.x downloads a file with two requests to `/{repo_id}/resolve/{revision}/{filename}`:
HEAD (metadata) and GET (content, with `Range: bytes=N-` to resume). The server answers them with the headers
the real hub sends: X-Repo-Commit, ETag (git's sha1 of small files), X-Linked-Etag / X-Linked-Size (sha256
and size of LFS files), Content-Length, and 206 Partial Content for Range requests; 404 answers carry the
hub's X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound).

Tests make it misbehave per file name (or "*" for every file) through its attributes:
    status[name] = 503        HEAD and GET answer with that HTTP status (401, 403, 408, 429, 5xx ...)
    get_status[name] = 500    only GET does
    drop_after[name] = n      the first GET sends n bytes of the body, then closes the connection
    down_after_drop = 503     ... and from then on GET of that file answers with this status
    body[name] = b"..."       GET sends these bytes instead (the headers still describe the real file)
    etag[name] = "abc"        the ETag (and X-Linked-Etag) announced for the file instead of its hash
    omit = {"etag", ...}      leave these headers (lower-case names) out of every file answer
    redirect[name] = url      HEAD and GET answer 302 to url + the same path, like the hub sending an LFS file
                              to its CDN (the 302 carries X-Repo-Commit, X-Linked-Etag and X-Linked-Size)
    get_redirect[name] = url  only GET is redirected (HEAD answers 200 as usual)
    commit = "..."            the commit "main" points to (change it to simulate a push during a download)
    echo_auth = True          error answers repeat the Authorization header (a leaky server, for token tests)

`FakeHub(repos, host="127.0.0.2")` listens on another loopback address: to the client that is another host,
so a second FakeHub there plays the CDN, and its `requests` show whether a token was sent to it.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from helpers.registry import get_spec

# The fake repository's commit is the one the course pins, so requests for "main" and for the pin both resolve.
COMMIT = get_spec("gpt2-chinese").revision
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")
RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def git_sha1(data: bytes) -> str:
    """git's blob id: what the hub sends as ETag for small (non-LFS) files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256(data: bytes) -> str:
    """What the hub sends as X-Linked-Etag for LFS files."""
    return hashlib.sha256(data).hexdigest()


def closed_port_url(host: str = "127.0.0.1") -> str:
    """An address on `host` where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    return f"http://{host}:{port}"


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    method: str
    path: str
    filename: str
    headers: dict[str, str]  # lower-case names


class FakeHub:
    """Serves `repos` ({repo_id: {filename: bytes}}) at revision "main" = COMMIT; use it as a context manager."""

    def __init__(self, repos: dict[str, dict[str, bytes]], lfs: tuple[str, ...] = ("pytorch_model.bin",),
                 host: str = "127.0.0.1"):
        self.repos = repos
        self.lfs = lfs
        self.host = host
        self.commit = COMMIT
        self.requests: list[Request] = []
        self.status: dict[str, int] = {}
        self.get_status: dict[str, int] = {}
        self.drop_after: dict[str, int] = {}
        self.body: dict[str, bytes] = {}
        self.etag: dict[str, str] = {}
        self.omit: set[str] = set()
        self.redirect: dict[str, str] = {}
        self.get_redirect: dict[str, str] = {}
        self.down_after_drop: int | None = None
        self.echo_auth = False
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The server's address, to use as HF_ENDPOINT."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def gets(self, filename: str) -> list[Request]:
        """The GET requests received for `filename`, in order."""
        return [r for r in self.requests if r.method == "GET" and r.filename == filename]

    def __enter__(self) -> FakeHub:
        self._server = QuietServer((self.host, 0), make_handler(self))
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()


class QuietServer(ThreadingHTTPServer):
    """A threaded server that does not print tracebacks when a client hangs up (tests do that on purpose)."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass


def make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to `hub`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_HEAD(self) -> None:
            self.answer(send_body=False)

        def do_GET(self) -> None:
            self.answer(send_body=True)

        def answer(self, send_body: bool) -> None:
            match = RESOLVE.match(self.path.split("?")[0])
            filename = unquote(match["filename"]) if match else self.path
            headers = {k.lower(): v for k, v in self.headers.items()}
            hub.requests.append(Request(self.command, self.path, filename, headers))
            if match is None or match["repo"] not in hub.repos:
                return self.error(404, "RepoNotFound", "Repository not found", send_body)
            if match["revision"] not in ("main", hub.commit, COMMIT):
                return self.error(404, "RevisionNotFound", "Invalid rev id", send_body)
            files = hub.repos[match["repo"]]
            if filename not in files:
                return self.error(404, "EntryNotFound", "Entry not found", send_body, commit=True)
            status = hub.status.get(filename) or hub.status.get("*")
            if send_body:
                status = status or hub.get_status.get(filename) or hub.get_status.get("*")
            if status:
                return self.error(status, None, "Internal Error", send_body)
            target = hub.redirect.get(filename) or (hub.get_redirect.get(filename) if send_body else None)
            if target:
                return self.send_redirect(target.rstrip("/") + self.path, filename, files[filename])
            self.send_file(filename, files[filename], send_body)

        def file_headers(self, filename: str, data: bytes) -> dict[str, str]:
            """The metadata headers of a file answer, as the hub sends them (minus `hub.omit`)."""
            lfs = filename in hub.lfs
            etag = hub.etag.get(filename) or (sha256(data) if lfs else git_sha1(data))
            headers = {"X-Repo-Commit": hub.commit, "ETag": f'"{etag}"'}
            if lfs:
                headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
            return {name: value for name, value in headers.items() if name.lower() not in hub.omit}

        def send_redirect(self, location: str, filename: str, data: bytes) -> None:
            self.send_response(302)
            for name, value in self.file_headers(filename, data).items():
                self.send_header(name, value)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def send_file(self, filename: str, data: bytes, send_body: bool) -> None:
            payload = hub.body.get(filename, data) if send_body else data
            start, status = 0, 200
            wanted = RANGE.match(self.headers.get("Range", ""))
            if send_body and wanted:
                start, status = int(wanted[1]), 206
            part = payload[start:]
            self.send_response(status)
            for name, value in self.file_headers(filename, data).items():
                self.send_header(name, value)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
            self.send_header("Content-Length", str(len(part) if send_body else len(data)))
            self.end_headers()
            if not send_body:
                return
            cut = hub.drop_after.pop(filename, None)
            if cut is not None:  # send only part of the body, then hang up
                self.wfile.write(part[:cut])
                self.wfile.flush()
                if hub.down_after_drop:
                    hub.get_status[filename] = hub.down_after_drop
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(part)

        def error(self, status: int, code: str | None, message: str, send_body: bool, commit: bool = False) -> None:
            if hub.echo_auth:
                message += f" (you sent Authorization: {self.headers.get('Authorization')})"
            body = json.dumps({"error": message}).encode()
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            if hub.echo_auth:
                self.send_header("X-Request-Id", str(self.headers.get("Authorization")))
            if commit:
                self.send_header("X-Repo-Commit", hub.commit)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)

    return Handler
