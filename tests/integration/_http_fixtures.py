"""Real HTTP servers on 127.0.0.1 for the check tests: scripted routes, a silent listener."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """What a route answers; `delay` is slept before answering."""

    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Route = Reply | Callable[["Handler"], Reply]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real service would
    # Buffered: headers and body leave in one write, so no delayed-ACK stall (~40 ms) per answer.
    wbufsize = 64 * 1024
    server: LoopbackServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.request_body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        with self.server.lock:
            self.server.hits[path] += 1
            self.server.requests.append((self.command, self.path, dict(self.headers)))
        route = self.server.routes.get(path)
        reply = Reply(404, b"not found") if route is None else route
        if callable(reply):
            reply = reply(self)
        if reply.delay:
            time.sleep(reply.delay)
        body = reply.body.encode() if isinstance(reply.body, str) else reply.body
        self.send_response(reply.status)
        headers = {"Content-Type": "text/plain; charset=utf-8", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _serve

    def log_message(self, format: str, *args: object) -> None:
        pass


class LoopbackServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer whose routes the test sets: path -> Reply or callable."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (a timeout under test) closes its end; that is expected here.
        pass

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def serving() -> Iterator[LoopbackServer]:
    """A started LoopbackServer, shut down and closed on exit."""
    server = LoopbackServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) but never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def closed_port() -> int:
    """A loopback port with nothing listening (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def trickling_server(interval: float = 0.2, *, head_too: bool = False) -> Iterator[int]:
    """A port whose answer is a 200 with a 1,000-byte body sent one byte every `interval`
    (`head_too`: the status line and headers as well, a byte at a time).

    Each byte arrives well inside any read timeout, so only a deadline over the whole answer
    (or the run's stop) ends the wait.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    done = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
                if head_too:
                    for byte in head:
                        if done.wait(interval):
                            return
                        conn.sendall(bytes([byte]))
                else:
                    conn.sendall(head)
                for _ in range(1000):
                    if done.wait(interval):
                        return
                    conn.sendall(b"x")
            except OSError:
                return

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        done.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        thread.join(5)


@contextmanager
def raw_answer(data: bytes | list[bytes], *, hold: bool = False) -> Iterator[str]:
    """The URL of a port that answers each connection with `data` (or the next of a list, in
    turn), as it is, then closes it (`hold`: keeps it open and silent until the block ends, as
    a service stuck mid-answer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    done = threading.Event()
    answers = data if isinstance(data, list) else [data]

    def answer(conn: socket.socket, data: bytes) -> None:
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(data)
            if hold:
                done.wait(30)
            conn.shutdown(socket.SHUT_WR)

    def serve() -> None:
        count = 0
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            data = answers[count % len(answers)]
            count += 1
            threading.Thread(target=answer, args=(conn, data), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        done.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        thread.join(5)


@contextmanager
def closes_kept_connections(answers: list[bytes]) -> Iterator[tuple[str, list[bytes]]]:
    """The URL of a port that answers the first request of each connection with the next of
    `answers`, in turn, without `Connection: close`, and closes the connection, unanswered, when
    a second request comes on it: a server whose keep-alive ended just as the client reused
    the connection. Also the list of every request line it read, in order."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    seen: list[bytes] = []
    count = [0]

    def request(conn: socket.socket) -> bytes:
        """One whole request (its head, and its body by Content-Length); its request line."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        while length and len(body) < int(length.group(1)):
            body += conn.recv(65536)
        return head.split(b"\r\n", 1)[0]

    def serve(conn: socket.socket, data: bytes) -> None:
        with conn, contextlib.suppress(OSError):
            seen.append(request(conn))
            conn.sendall(data)
            second = request(conn)  # the next request on the kept connection
            if second:
                seen.append(second)

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            data = answers[count[0] % len(answers)]
            count[0] += 1
            threading.Thread(target=serve, args=(conn, data), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", seen
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        thread.join(5)
