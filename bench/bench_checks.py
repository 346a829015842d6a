"""Benchmark of HTTP checks against a local server (run: python bench/bench_checks.py).

1. Overhead: 200 sequential GET checks through `CheckRunner.run` against a bare
   `requests.Session().get` loop on the same endpoint; the ratio of throughputs (target >= 0.8x).
2. Parallelism: 10 checks of a 20 ms endpoint through `run_many` against one after another.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from drillbook.checks import CheckRunner
from drillbook.model import Environment, HttpCheck

N_SEQUENTIAL = 200
N_PARALLEL = 10
SLOW_S = 0.020
BODY = json.dumps({"status": "ok", "version": "1.1.0"}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered: headers and body leave in one write, so no delayed-ACK stall (~40 ms) per answer.
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


def best_of(runs: int, fn) -> float:
    """The fastest of a few runs, in seconds: the least disturbed by the rest of the machine."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    environment = Environment.model_validate({"url": url})
    check = HttpCheck.model_validate(
        {"get": "/health", "expect": {"status": 200, "json": {"status": "ok"}}}
    )
    try:
        with requests.Session() as session:
            session.get(url + "/health").raise_for_status()  # warm the connection

            def bare() -> None:
                for _ in range(N_SEQUENTIAL):
                    response = session.get(url + "/health", timeout=(3.05, 5))
                    assert response.status_code == 200
                    assert response.json()["status"] == "ok"

            bare_s = best_of(5, bare)

        with CheckRunner(environment, env_name="bench") as runner:
            runner.run(check)  # warm the connection

            def checked() -> None:
                for _ in range(N_SEQUENTIAL):
                    assert runner.run(check).outcome == "pass"

            runner_s = best_of(5, checked)

            slow = [
                (f"slow-{i}", HttpCheck.model_validate({"get": f"/slow/{i}"}))
                for i in range(N_PARALLEL)
            ]

            def one_by_one() -> None:
                assert all(runner.run(c, name=n).passed for n, c in slow)

            def together() -> None:
                assert all(r.passed for r in runner.run_many(slow))

            together()  # warm the pool's connections
            sequential_s = best_of(3, one_by_one)
            parallel_s = best_of(3, together)
    finally:
        server.shutdown()
        server.server_close()

    bare_rate = N_SEQUENTIAL / bare_s
    runner_rate = N_SEQUENTIAL / runner_s
    print(f"bare requests.Session.get: {bare_rate:7.0f} req/s ({N_SEQUENTIAL} sequential)")
    print(f"CheckRunner.run:           {runner_rate:7.0f} checks/s")
    ratio = runner_rate / bare_rate
    verdict = "ok" if ratio >= 0.8 else "BELOW TARGET"
    print(f"throughput ratio:          {ratio:7.2f}x (target >= 0.8x: {verdict})")
    print(
        f"{N_PARALLEL} checks of a {SLOW_S * 1000:.0f} ms endpoint: one by one "
        f"{sequential_s * 1000:.0f} ms, run_many {parallel_s * 1000:.0f} ms, "
        f"speed-up {sequential_s / parallel_s:.1f}x"
    )


if __name__ == "__main__":
    main()
