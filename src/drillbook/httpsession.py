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
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

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
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.exceptions import ProtocolError

    # By id: a dict is copied in one C call, so `cut` never sees it change under it. The
    # entries live as long as the session (one checks step): a few connections, a few hundred
    # when a server closes every connection.
    made: dict[int, Any] = {}
    # thread ident -> the connection it took from a pool last (one request at a time each)
    taken: dict[int, Any] = {}
    # thread ident -> whether that connection was kept open from an earlier request
    kept: dict[int, bool] = {}

    class Noting:
        """Notes every connection the pool makes, and which thread took each; asks again, once,
        when a kept connection turns out closed before any answer."""

        def _new_conn(self) -> Any:
            conn = super()._new_conn()  # the pool class it is mixed into
            made[id(conn)] = conn
            return conn

        def _get_conn(self, timeout: float | None = None) -> Any:
            conn = super()._get_conn(timeout)
            ident = threading.get_ident()
            taken[ident] = conn
            kept[ident] = getattr(conn, "sock", None) is not None
            return conn

        def urlopen(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            try:
                return super().urlopen(method, url, *args, **kwargs)
            except ProtocolError as exc:
                # A server may close a kept connection at any moment (its keep-alive timeout),
                # and the close can cross the next request: that request was never answered,
                # not refused. As browsers and curl do (RFC 9112, 9.3.1), a GET or HEAD is
                # sent again, once, on a new connection; the check then judges that answer.
                if not (
                    method in ("GET", "HEAD")
                    and kept.get(threading.get_ident())
                    and _closed_unanswered(exc)
                ):
                    raise
            return super().urlopen(method, url, *args, **kwargs)

    class FinalHTTPConnection(HTTPConnection):
        response_class = final_response_class()

    class FinalHTTPSConnection(HTTPSConnection):
        response_class = final_response_class()

    class NotingHTTPPool(Noting, HTTPConnectionPool):
        ConnectionCls = FinalHTTPConnection

    class NotingHTTPSPool(Noting, HTTPSConnectionPool):
        ConnectionCls = FinalHTTPSConnection

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


def _closed_unanswered(exc: BaseException) -> bool:
    """Whether a request failed because its connection closed before any of the answer came."""
    import http.client

    reasons = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
    return any(isinstance(arg, reasons) for arg in getattr(exc, "args", ()))


#: Interim answers (1xx) read before the final one, at most: a service that sends them without
#: end is not answering.
MAX_INTERIM_ANSWERS = 100


@functools.cache
def final_response_class() -> type:
    """http.client's response, made to read past every interim answer to the final one.

    http.client skips only a 100 Continue; a 103 Early Hints (which frameworks and CDNs send
    ahead of a page) or a 102 Processing would be taken for the answer itself: a check would
    see "-> 103" and no body, and never the 200 or 500 that follows. Their headers are read and
    dropped, as http.client drops a 100's; 101 Switching Protocols is final.
    """
    import http.client

    class FinalResponse(http.client.HTTPResponse):
        def _read_status(self) -> tuple[str, int, str]:
            for _ in range(MAX_INTERIM_ANSWERS):
                version, status, reason = super()._read_status()
                if not 100 < status < 200 or status == 101:
                    return version, status, reason
                http.client.parse_headers(self.fp)
            raise http.client.HTTPException(
                f"more than {MAX_INTERIM_ANSWERS} interim (1xx) answers before the final one"
            )

    return FinalResponse


#: How often a wait for a name lookup looks at the run's stop.
_LOOKUP_SLICE_S = 0.1
#: The name of the threads that look names up, see `lookup_in_time`.
LOOKUP_NAME = "drillbook-name-lookup"
_lookups_lock = threading.Lock()
#: (host, port) that resolved in this process: a run asks DNS once a name.
_resolved: set[tuple[str, int]] = set()
#: Lookups still going, by (host, port): a slow name is asked once, however many wait for it.
_pending: dict[tuple[str, int], threading.Event] = {}


@functools.lru_cache(maxsize=256)
def _is_name(host: str) -> bool:
    """Whether `host` is a name for DNS: not an address, not loopback (`/etc/hosts` has it)."""
    import ipaddress

    if is_loopback(host):
        return False
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return True
    return False


def lookup_in_time(
    url: str, seconds: float, stopped: Callable[[], bool]
) -> Literal["late", "stopped"] | None:
    """Look up the host of `url` within `seconds`: None when it resolved (or needs no lookup,
    or failed: the request then says how), "late" when it did not in time, "stopped" when the
    run was stopped first.

    A request's timeouts start once it has an address: the system's resolver may wait 5 s a
    name server and try each twice before it gives up, past a check's timeout and deadline,
    and past a Ctrl-C. So the lookup runs in a thread of its own, and the check waits for it
    only as long as it may. A lookup that outlives the wait goes on, and a later attempt
    waits for the same one. Not for a host reached through a proxy: the proxy resolves it.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname
    if not host or not _is_name(host):
        return None
    key = (host, parts.port or (443 if parts.scheme == "https" else 80))
    with _lookups_lock:
        if key in _resolved:
            return None
        done = _pending.get(key)
        if done is None:
            import requests.utils

            if requests.utils.get_environ_proxies(url):
                return None
            done = _pending[key] = threading.Event()
            threading.Thread(
                target=_look_up, args=(key, done), name=LOOKUP_NAME, daemon=True
            ).start()
    end = time.monotonic() + seconds
    while not done.wait(max(0.0, min(_LOOKUP_SLICE_S, end - time.monotonic()))):
        if stopped():
            return "stopped"
        if time.monotonic() >= end:
            return "late"
    return None


def _look_up(key: tuple[str, int], done: threading.Event) -> None:
    """Resolve `key` (a daemon thread: a hung lookup never holds the process's exit)."""
    try:
        socket.getaddrinfo(key[0], key[1], type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        pass  # the request looks it up again, and says what failed in its own words
    else:
        with _lookups_lock:
            _resolved.add(key)
    finally:
        with _lookups_lock:
            _pending.pop(key, None)
        done.set()


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
