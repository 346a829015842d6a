"""The HTTP session of the checks: pooled connections that a stop of the run can cut.

A request in flight waits in its socket for an answer until its read timeout (5 s by default, as
long as a check sets). When the run is stopped (Ctrl-C, SIGTERM), waiting that out is wrong: the
person at the terminal wants the run to stop now. So the session's connection pools note every
connection they make, and `cut` shuts their sockets down: a read that waits returns at once, the
request fails, and the check ends as inconclusive because the run was stopped. `cut` only calls
`shutdown()` on sockets and takes no lock, so a signal handler may call it.

A proxy from the environment (`HTTP_PROXY`, ...) is used as requests uses it, except for a
loopback host: a proxy cannot reach this machine's loopback, so a check of `127.0.0.1` or
`localhost` through one could only fail, and never tell that staging was fine.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

#: Pooled connections per host: enough for the widest sampling, so none is thrown away.
POOL_SIZE = 64


@functools.lru_cache(maxsize=256)
def is_loopback(host: str | None) -> bool:
    """Whether a URL's host is this machine's loopback: `localhost`, 127.0.0.0/8 or ::1.

    Asked once a request, of a handful of hosts: each is judged once.
    """
    import ipaddress

    host = (host or "").strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cuttable_session() -> tuple[requests.Session, Callable[[], None]]:
    """A `requests.Session` for the checks, and the function that cuts its connections.

    The session also has `drillbook_deadlines`, a `Deadlines` that cuts only the connection
    a thread took from the pool last when that thread's deadline passes: a check's deadline
    ends its own request (an answer that trickles in a byte at a time never trips a read
    timeout) and no other.
    """
    from urllib.parse import urlsplit

    import requests
    from requests.adapters import HTTPAdapter
    from requests.sessions import merge_setting
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    # By id: a dict is copied in one C call, so `cut` never sees it change under it. The
    # entries live as long as the session (one checks step): a few connections, a few hundred
    # when a server closes every connection.
    made: dict[int, Any] = {}
    # thread ident -> the connection it took from a pool last (one request at a time each)
    taken: dict[int, Any] = {}

    class Noting:
        """Notes every connection the pool makes, and which thread took each."""

        def _new_conn(self) -> Any:
            conn = super()._new_conn()  # the pool class it is mixed into
            made[id(conn)] = conn
            return conn

        def _get_conn(self, timeout: float | None = None) -> Any:
            conn = super()._get_conn(timeout)
            taken[threading.get_ident()] = conn
            return conn

    class NotingHTTPPool(Noting, HTTPConnectionPool):
        pass

    class NotingHTTPSPool(Noting, HTTPSConnectionPool):
        pass

    class NotingAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {
                "http": NotingHTTPPool,
                "https": NotingHTTPSPool,
            }

    def cut() -> None:
        for conn in made.copy().values():
            _shut(conn)

    def cut_thread(ident: int) -> None:
        conn = taken.get(ident)
        if conn is not None:
            _shut(conn)

    class LoopbackDirect(requests.Session):
        """A session that takes proxies from the environment for every host but loopback."""

        def merge_environment_settings(
            self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
        ) -> Any:
            if not is_loopback(urlsplit(url).hostname):
                return super().merge_environment_settings(url, proxies, stream, verify, cert)
            # requests' merge without the proxies, which a loopback host never uses: finding
            # them walks os.environ twice a request, a fifth of a check's own time.
            if self.trust_env and (verify is True or verify is None):
                verify = (
                    os.environ.get("REQUESTS_CA_BUNDLE")
                    or os.environ.get("CURL_CA_BUNDLE")
                    or verify
                )
            return {
                "proxies": {},
                "stream": merge_setting(stream, self.stream),
                "verify": merge_setting(verify, self.verify),
                "cert": merge_setting(cert, self.cert),
            }

        def get_redirect_target(self, resp: Any) -> Any:
            # requests reads a redirect's Location as UTF-8 even when the redirect is not
            # followed (for `Response.next`), and raises UnicodeDecodeError on other bytes; the
            # checks follow redirects themselves and read Location with `redirect_location`.
            try:
                return super().get_redirect_target(resp)
            except UnicodeDecodeError:
                return None

    session = LoopbackDirect()
    adapter = NotingAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.drillbook_deadlines = Deadlines(cut_thread)  # type: ignore[attr-defined]
    return session, cut


#: How long the deadline watcher waits for another request before it ends.
_LINGER_S = 0.25
#: The watcher thread's name, by which `parallel` tells it from a thread that may hold locks.
WATCHER_NAME = "drillbook-check-deadlines"


class Deadlines:
    """One thread that cuts a thread's request when its deadline passes.

    `arm` and `disarm` are a lock and a heap push each (microseconds), and wake the watcher
    only for a deadline nearer than the one it sleeps until: a thread, or a wake-up, a request
    would cost a quarter of a loopback check. A deadline disarmed in time is dropped when
    it comes up, unacted on. The watcher ends a moment after the last deadline it holds; it
    never takes part in a fork (`parallel` knows it by its name: a worker never uses it).
    """

    def __init__(self, cut_thread: Callable[[int], None]) -> None:
        self._cut_thread = cut_thread
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, int]] = []
        self._live: set[int] = set()
        self._fired: set[int] = set()
        self._count = 0
        self._watcher: threading.Thread | None = None
        self._wake_at = float("inf")

    def arm(self, seconds: float) -> int:
        """Cut the calling thread's request in `seconds`; a token for `disarm`."""
        import heapq
        import time

        with self._cond:
            self._count += 1
            token = self._count
            at = time.monotonic() + max(seconds, 0.0)
            heapq.heappush(self._heap, (at, token, threading.get_ident()))
            self._live.add(token)
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, name=WATCHER_NAME, daemon=True)
                self._watcher.start()
            elif at < self._wake_at:
                self._cond.notify()
            return token

    def disarm(self, token: int) -> bool:
        """Forget a deadline; whether it had already fired (the request was cut)."""
        with self._cond:
            self._live.discard(token)
            fired = token in self._fired
            self._fired.discard(token)
            return fired

    def _watch(self) -> None:
        import heapq
        import time

        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (
                    self._heap[0][1] not in self._live or self._heap[0][0] <= now
                ):
                    _, token, ident = heapq.heappop(self._heap)
                    if token in self._live:
                        self._live.discard(token)
                        self._fired.add(token)
                        # Under the lock: once `disarm` returns, this deadline cuts nothing,
                        # so a thread's next request is never cut for the one before.
                        self._cut_thread(ident)
                if not self._heap:
                    # Linger a moment (the next request of a run of checks comes at once),
                    # then end; the next `arm` starts a watcher again.
                    self._wake_at = now + _LINGER_S
                    self._cond.wait(_LINGER_S)
                    self._wake_at = float("inf")
                    if not self._heap:
                        self._watcher = None
                        return
                    continue
                self._wake_at = self._heap[0][0]
                self._cond.wait(self._heap[0][0] - now)
                self._wake_at = float("inf")


def redirect_location(headers: Any) -> str | None:
    """A response's Location header as text: its bytes read as UTF-8, as requests and browsers
    read them, or as they came (Latin-1, as http.client gives them) when they are not UTF-8."""
    location = headers.get("Location")
    if location is None:
        return None
    try:
        return location.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return location


def _shut(conn: Any) -> None:
    """Shut a connection's socket down: a read that waits on it returns at once."""
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError, ValueError):
            sock.shutdown(socket.SHUT_RDWR)
