"""A tiny threaded HTTP server on 127.0.0.1 for the benchmarks; prints its URL, then serves.

    python bench/http_server.py [SLOW_MS]

`/health` answers `{"status": "ok", "version": ...}` at once, `/version` the version, and any
path starting with `/slow` the same after SLOW_MS milliseconds (default 20). Headers and body
leave in one write, so no delayed-ACK stall (~40 ms) is added to an answer.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW_S = (int(sys.argv[1]) if len(sys.argv) > 1 else 20) / 1000
BODY = json.dumps({"status": "ok", "version": "1.0.0"}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(SLOW_S)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format, *args) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main() -> None:
    server = Server(("127.0.0.1", 0), Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
