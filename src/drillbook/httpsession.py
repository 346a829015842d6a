"""The HTTP session of the checks: pooled connections that a stop of the run can cut.

A request in flight waits in its socket for an answer until its read timeout (5 s by default, as
long as a check sets). When the run is stopped (Ctrl-C, SIGTERM), waiting that out is wrong: the
person at the terminal wants the run to stop now. So the session's connection pools note every
connection they make, and `cut` shuts their sockets down: a read that waits returns at once, the
request fails, and the check ends as inconclusive because the run was stopped. `cut` only calls
`shutdown()` on sockets and takes no lock, so a signal handler may call it.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

#: Pooled connections per host: enough for the widest sampling, so none is thrown away.
POOL_SIZE = 64


def cuttable_session() -> tuple[requests.Session, Callable[[], None]]:
    """A `requests.Session` for the checks, and the function that cuts its connections."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    # By id: a dict is copied in one C call, so `cut` never sees it change under it. The
    # entries live as long as the session (one checks step): a few connections, a few hundred
    # when a server closes every connection.
    made: dict[int, Any] = {}

    class Noting:
        """Notes every connection the pool makes."""

        def _new_conn(self) -> Any:
            conn = super()._new_conn()  # the pool class it is mixed into
            made[id(conn)] = conn
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
            sock = getattr(conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError, AttributeError, ValueError):
                    sock.shutdown(socket.SHUT_RDWR)

    session = requests.Session()
    adapter = NotingAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session, cut
