"""HTTP and command checks: each ends as pass, fail or inconclusive, with expected and got.

`CheckRunner.run` runs one check of a runbook against one environment; `run_many` runs a list
of them, reads in parallel, keeping their order. A failed check is a result, never an
exception; the only error raised is `PreconditionFailed`, for a URL the environment does not
allow, before any request is sent.

Outcomes: **pass** when every expectation holds; **fail** when the service answered and an
expectation does not hold; **inconclusive** when there is no answer (refused, timed out, DNS,
TLS, reset), nothing to judge (a JSON expectation on a body that is not JSON) or the deadline
left too little time to judge (sampling cut short), or the command could not run. An attempt
after the first that the deadline cuts short is no news of the service: the attempt before it
is the one judged, and the result says so. A request that timed out still says its answer
takes longer than it was waited for: when other samples got an answer, one that waited past
`max_time`, or enough of them to put a percentile past its limit, make that expectation fail.

Timing: every request has a connect timeout of `min(timeout, 3.05s)` (just over a multiple of
TCP's 3 s SYN retransmission, as the requests documentation advises) and a read timeout of
`timeout`, both clipped to the time left before the check's deadline; reading the body stops
once `timeout` has passed since the request started. The deadline is `deadline`, or
`timeout x ceil(samples / concurrency) x attempts + interval x (attempts - 1)`; no attempt and
no sample starts after it. A sample's time is `time.perf_counter` from before the request is
sent until its body is read, redirects included.

This module talks to the network, runs commands and drives each check; judging the answers
against the check's `expect` is `drillbook.expectations`, which does no I/O.
"""

from __future__ import annotations

import math
import re
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from drillbook.errors import PreconditionFailed
from drillbook.expectations import (
    Finding,
    Mask,
    Outcome,
    Sample,
    TextSearch,
    Verdict,
    body_text,
    excerpt_source,
    expected_text,
    fmt_ms,
    judge_command,
    merge_samples,
    nearest_rank,
    one_line,
    pass_got,
    printable,
    sample_findings,
    unmasked,
)
from drillbook.httpsession import lookup_in_time, redirect_location
from drillbook.model import Environment, HttpCheck, RunCheck, format_duration, host_key

if TYPE_CHECKING:
    import requests

    from drillbook.process import StopToken
    from drillbook.secrets import Masker

CONNECT_TIMEOUT_CAP = 3.05
MAX_REDIRECTS = 5
MAX_BODY_BYTES = 4 * 1024 * 1024
EXCERPT_CHARS = 300
#: The bytes of a body its excerpt is made from: room for multi-byte text and masking.
_EXCERPT_BYTES = EXCERPT_CHARS * 4 + 8192
#: Checks that `run_many` may run at once; small, because staging is often one small process.
PARALLEL_CHECKS = 8
_CHUNK = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*:)?//[^/?#@]*@")
_CREDENTIAL_HEADERS = frozenset(("authorization", "proxy-authorization", "cookie"))


@dataclass(frozen=True)
class CheckResult:
    """The result of one check: what was expected, what came back, and whether to retry."""

    name: str
    outcome: Outcome
    expected: str
    got: str
    message: str
    attempts: int
    duration_ms: int
    retry_safe: bool
    excerpt: str
    timings_ms: tuple[float, ...] = ()
    # A command check's command (masked) and its return code (negative: killed by that signal;
    # None: it never started); both None for an HTTP check.
    argv: tuple[str, ...] | None = None
    exit: int | None = None

    @property
    def passed(self) -> bool:
        """Whether the check passed (only pass passes)."""
        return self.outcome == "pass"

    def as_dict(self) -> dict[str, Any]:
        """The result as plain JSON-ready data, for the journal and `--format json`."""
        data = asdict(self)
        data["timings_ms"] = list(self.timings_ms)
        if self.argv is None:  # an HTTP check: no command to name
            del data["argv"], data["exit"]
        else:
            data["argv"] = list(self.argv)
        return data


@dataclass(frozen=True)
class _Prepared:
    """A check made concrete: placeholders filled and its URL allowed."""

    check: HttpCheck | RunCheck
    name: str
    label: str
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    argv: Sequence[str] | str = ()
    # Placeholders the check names whose value is empty here ({previous} of a first release).
    unfilled: tuple[str, ...] = ()

    @property
    def keep_body(self) -> int:
        """How much of an answer's body to keep: all (to the cap) when `expect` judges it
        (`json`, `body_contains`), else what its excerpt shows."""
        expect = getattr(self.check, "expect", None)
        if expect is not None and (expect.json_ or expect.body_contains is not None):
            return MAX_BODY_BYTES
        return _EXCERPT_BYTES


def redact_url(url: str) -> str:
    """The URL with any user part (name and password) replaced by `***`."""
    return _USERINFO.sub(lambda m: f"{m.group(1) or ''}//***@", url, count=1)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, host_key(parts.hostname or ""), parts.port or _DEFAULT_PORTS.get(scheme)


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """The exception and those it wraps (causes, contexts, urllib3's `reason`, args)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        item = todo.pop()
        if any(item is s for s in seen):
            continue
        seen.append(item)
        nested = [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
        todo.extend(n for n in nested if isinstance(n, BaseException))
    return seen


def describe_no_answer(
    exc: BaseException, *, connect_s: float, read_s: float, mask: Mask = unmasked
) -> str:
    """Why a request got no answer, in a few words: refused, timed out, DNS, TLS, reset; and
    whether it was the proxy of the environment (HTTPS_PROXY, ...) that said so. What it shows
    of the answer (its first line, its headers) is masked with `mask` before it is cut."""
    import requests

    why = _no_answer(exc, connect_s=connect_s, read_s=read_s, mask=mask)
    if isinstance(exc, requests.exceptions.ProxyError):
        # "connection refused" alone sends the person on call to staging, which it never reached.
        return f"the proxy set in the environment (HTTP_PROXY, HTTPS_PROXY): {why}"
    return why


def _no_answer(exc: BaseException, *, connect_s: float, read_s: float, mask: Mask) -> str:
    import http.client
    import socket
    import ssl

    import requests

    chain = _exception_chain(exc)
    names = {type(e).__name__ for e in chain}

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(e, types) for e in chain)

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"no connection within {format_duration(connect_s)} (connect timeout)"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"no answer within {format_duration(read_s)} (read timeout)"
    if isinstance(exc, requests.exceptions.SSLError) or has(ssl.SSLError):
        detail = next((str(e) for e in chain if isinstance(e, ssl.SSLError)), str(exc))
        return f"TLS error: {one_line(detail, 160, mask)}"
    if has(ConnectionRefusedError):
        return "connection refused"
    if has(socket.gaierror) or "NameResolutionError" in names:
        return "DNS lookup failed"
    if has(ConnectionResetError, ConnectionAbortedError, BrokenPipeError) or has(
        http.client.RemoteDisconnected
    ):
        return "connection closed without an answer (reset)"
    # Something answered, but not HTTP that can be read: another service on the port (SSH, a
    # database), a proxy's garbage, headers past http.client's limits, a body cut short.
    for e in chain:
        if isinstance(e, http.client.BadStatusLine):
            return f"the answer is not HTTP: it begins {one_line(repr(e.line), 60, mask)}"
        if isinstance(e, http.client.IncompleteRead):
            if isinstance(e.partial, int) and e.expected:
                size = f"{e.partial} of {e.partial + e.expected} bytes"
                return f"answer cut short: the connection closed after {size} of the body"
            if has(ValueError):
                return "answer cut short: a chunk of the body is malformed"
            return "answer cut short: the connection closed in the middle of the body"
        if type(e) in (http.client.HTTPException, http.client.LineTooLong):
            return f"the answer's headers cannot be read: {one_line(str(e), 100, mask)}"
    if has(TimeoutError):
        # The status line and headers came (else ReadTimeout, above); the body stopped.
        return f"answer not complete within {format_duration(read_s)} (the body stopped coming)"
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        # urllib3's words: "Received response with content-encoding: gzip, but failed to ..."
        words = next((a for e in chain for a in e.args if isinstance(a, str)), str(exc))
        return f"the body cannot be decoded: {one_line(words, 120, mask)}"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"answer cut short: {one_line(str(exc), 160, mask)}"
    return f"{type(exc).__name__}: {one_line(str(exc), 160, mask)}"


def _timed_out(exc: BaseException) -> bool:
    """Whether a request reached the service and its answer, or the rest of its body, did not
    come in time (not a connect timeout, not the proxy's)."""
    import requests

    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.ProxyError):
        return False
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    return any(isinstance(e, TimeoutError) for e in _exception_chain(exc))


def _mentions(value: Any, token: str) -> bool:
    """Whether `token` is in any text of `value` (mappings' keys and values, lists)."""
    if isinstance(value, str):
        return token in value
    if isinstance(value, dict):
        return any(_mentions(k, token) or _mentions(v, token) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_mentions(v, token) for v in value)
    return False


def _unfilled(check: HttpCheck | RunCheck, placeholders: Mapping[str, str]) -> tuple[str, ...]:
    """The placeholders `check` names that have no value here, as `{previous}` has none in a
    first release: filled in empty, `body_contains: "{previous}"` would pass on any answer
    and `run: [verify, "{previous}"]` would be given an empty argument."""
    empty = [key for key, value in placeholders.items() if not value]
    if not empty:
        return ()
    from drillbook.plan import uses_placeholder

    expect = check.expect
    texts: list[Any] = [getattr(expect, key, None) for key in _FILLED_EXPECT]
    if not isinstance(check, RunCheck):
        texts += [check.target, dict(check.headers), check.body]
    return tuple(
        key
        for key in empty
        if _mentions(texts, "{" + key + "}")
        # A command and its `env:`, as a step's: a shell's by its DRILLBOOK_* variable.
        or (isinstance(check, RunCheck) and uses_placeholder(check, key))
    )


#: The fields of `expect` whose text may name placeholders: `json: {version: "{version}"}`.
_FILLED_EXPECT = ("json_", "body_contains", "header", "output_contains")


def _fill(value: Any, placeholders: Mapping[str, str]) -> Any:
    """Placeholders filled in text, and in every text inside mappings and lists."""
    if isinstance(value, str):
        for key, replacement in placeholders.items():
            value = value.replace("{" + key + "}", replacement)
        return value
    if isinstance(value, dict):
        return {_fill(k, placeholders): _fill(v, placeholders) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, placeholders) for v in value]
    return value


class CheckRunner:
    """Runs checks against one environment; one HTTP session, reused, for all of them.

    Side effects are parameters: `session` (default: a `requests.Session` made on first use),
    `clock` and `sleep` for deadlines and retry intervals, `cwd` for command checks, `stop` to
    end early when the run is interrupted. `placeholders` fill `{env}`, `{version}`,
    `{previous}`, `{url}` and `{service}`; `env` and `url` default to this environment's.
    Command checks get `command_env` in their environment (the run's id) and `on_command_start`
    is called with each one's pid, so that a run can record what it started.
    Use as a context manager, or call `close`, to close a session the runner made.
    """

    def __init__(
        self,
        environment: Environment,
        *,
        env_name: str,
        session: requests.Session | None = None,
        masker: Masker | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        cwd: Path | None = None,
        placeholders: Mapping[str, str] | None = None,
        stop: StopToken | None = None,
        command_env: Mapping[str, str] | None = None,
        on_command_start: Callable[[int], None] | None = None,
    ) -> None:
        self.environment = environment
        self._command_env = dict(command_env or {})
        self._on_command_start = on_command_start
        self.env_name = env_name
        self._session = session
        self._own_session = session is None
        self._session_lock = threading.Lock()
        # One sample judged at a time: judging holds the GIL anyway, and a 4 MiB JSON body
        # parses to a tree many times its size; 64 of them at once took gigabytes.
        self._judge_lock = threading.Lock()
        self._forget_stop: Callable[[], object] | None = None
        self._masker = masker
        self._clock = clock
        self._sleep = sleep
        self._cwd = cwd
        self._stop = stop
        self.placeholders: dict[str, str] = {"env": env_name, "url": environment.url.rstrip("/")}
        self.placeholders.update(placeholders or {})
        self._base = urlsplit(environment.url)
        own_host = host_key(self._base.hostname or "")
        listed = [host_key(h) for h in environment.allow_hosts or []]
        # The environment's own host is always reachable: it is where its checks go.
        self._allowed = frozenset([own_host, *listed])
        self._explicit_hosts = frozenset(listed)

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> CheckRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session if this runner made it."""
        with self._session_lock:
            if self._forget_stop is not None:
                self._forget_stop()
                self._forget_stop = None
            if self._own_session and self._session is not None:
                self._session.close()
                self._session = None

    def _get_session(self) -> requests.Session:
        with self._session_lock:
            if self._session is None:
                # Imported here: requests costs ~30 ms of start-up that most commands never need.
                from drillbook.httpsession import cuttable_session

                session, cut = cuttable_session()
                if self._stop is not None:
                    # A stopped run does not wait out the read timeouts of requests in flight.
                    self._forget_stop = self._stop.on_stop(cut)
                self._session = session
            return self._session

    # --- public API ---------------------------------------------------------------------------

    def run(self, check: HttpCheck | RunCheck, *, name: str | None = None) -> CheckResult:
        """Run one check, with its retries, within its deadline.

        Raises `PreconditionFailed` before any request when the check's URL is not allowed.
        """
        return self._execute(self._prepare(check, name=name))

    def run_many(self, checks: Sequence[tuple[str, HttpCheck | RunCheck]]) -> list[CheckResult]:
        """Run checks and return their results in the same order.

        Every URL is checked before the first request. Consecutive GET and HEAD checks run in
        parallel (up to `PARALLEL_CHECKS` at once); a POST or command check runs alone, after
        the checks before it and before those after it, in case later checks depend on it.
        """
        prepared = [self._prepare(check, name=name) for name, check in checks]
        results: list[CheckResult | None] = [None] * len(prepared)
        i = 0
        while i < len(prepared):
            j = i
            while j < len(prepared) and _is_read(prepared[j].check):
                j += 1
            if j - i > 1:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(min(PARALLEL_CHECKS, j - i)) as pool:
                    for k, result in enumerate(pool.map(self._execute, prepared[i:j])):
                        results[i + k] = result
                i = j
            else:
                results[i] = self._execute(prepared[i])
                i += 1
        return [r for r in results if r is not None]

    def _prepare(self, check: HttpCheck | RunCheck, *, name: str | None = None) -> _Prepared:
        """The check with its placeholders filled and its URL checked against `allow_hosts`."""
        unfilled = _unfilled(check, self.placeholders)
        # A check that will not run is shown as written: `GET /version/{previous}`.
        values = {k: v for k, v in self.placeholders.items() if k not in unfilled}
        # Expected values may name placeholders too: `json: {version: "{version}"}`.
        updates = {}
        for key in _FILLED_EXPECT:
            value = getattr(check.expect, key, None)
            filled = _fill(value, values)
            if filled != value:
                updates[key] = filled
        if updates:
            check = check.model_copy(update={"expect": check.expect.model_copy(update=updates)})
        if isinstance(check, RunCheck):
            argv: Sequence[str] | str
            if check.shell:
                # Placeholders reach a shell only as DRILLBOOK_* variables, never in its text.
                argv = check.run if isinstance(check.run, str) else shlex.join(check.run)
                label = "run " + argv
            else:
                argv = [_fill(a, values) for a in check.run]
                label = "run " + shlex.join(argv)
            label = one_line(self._mask(label), 80)
            return _Prepared(
                check, name or check.name or label, label, argv=argv, unfilled=unfilled
            )
        target = _fill(check.target, values)
        url = self.resolve_url(target)
        label = one_line(f"{check.method} {self._mask(redact_url(target))}", 120)
        headers = _fill(dict(check.headers), values)
        body = _fill(check.body, values)
        return _Prepared(
            check, name or check.name or label, label, url, headers, body, unfilled=unfilled
        )

    def url_of(self, check: HttpCheck) -> str:
        """The URL `check` would request, placeholders filled; refused as `resolve_url` does."""
        return self.resolve_url(_fill(check.target, self.placeholders))

    def resolve_url(self, target: str) -> str:
        """The URL of a check's path or URL; refused (`PreconditionFailed`) when not allowed.

        A path is joined under the environment's url, keeping its base path. An absolute URL
        must be http or https, carry no credentials, and name a host on `allow_hosts`.
        """
        parts = urlsplit(target)
        if parts.scheme or parts.netloc or target.startswith("//"):
            url = target
        else:
            path = self._base.path.rstrip("/") + "/" + parts.path.lstrip("/")
            url = urlunsplit((self._base.scheme, self._base.netloc, path, parts.query, ""))
        refusal = self._refusal(url)
        if refusal:
            shown = self._mask(redact_url(url))
            msg = f"check URL {shown} refused for environment {self.env_name}: {refusal}"
            raise PreconditionFailed(msg, hint=_REFUSAL_HINTS.get(refusal.split(" ")[0]))
        return url

    # --- HTTP ---------------------------------------------------------------------------------

    def _refusal(self, url: str) -> str | None:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            return f"scheme {parts.scheme or '(none)'}: expected http or https"
        if "@" in parts.netloc:
            return "credentials in the URL are never sent"
        try:
            parts.port  # noqa: B018 - parsing the port is what raises for a bad one
        except ValueError:
            return "the port is not a number between 0 and 65535"
        host = host_key(parts.hostname or "")
        if host not in self._allowed:
            allowed = ", ".join(sorted(self._allowed))
            return f"host {host or '(none)'} is not on allow_hosts ({allowed})"
        return None

    def _redirect_refusal(self, first_url: str, location: str) -> str | None:
        """Why a redirect is not followed, or None to follow it.

        Followed: the same origin (scheme, host, port) as the check's URL, or a host listed in
        the environment's `allow_hosts`, never from https down to http.
        """
        parts = urlsplit(location)
        if parts.scheme.lower() not in ("http", "https"):
            return f"scheme {parts.scheme or '(none)'}"
        if "@" in parts.netloc:
            return "credentials in the URL"
        if _origin(location) == _origin(first_url):
            return None
        scheme, host, _port = _origin(location)
        first_scheme, first_host, _ = _origin(first_url)
        if first_scheme == "https" and scheme == "http":
            return "https to http"
        if host in self._explicit_hosts:
            return None
        return "another host" if host != first_host else "another origin (scheme or port)"

    def _request(self, prep: _Prepared, limit_s: float) -> Sample:
        """One request, redirects followed by hand, the body read within `limit_s`."""
        import requests

        check = prep.check
        assert isinstance(check, HttpCheck)  # noqa: S101 - for the type checker
        session = self._get_session()
        method, url, headers = check.method, prep.url, dict(prep.headers)
        kwargs: dict[str, Any] = {}
        if prep.body is not None:
            if isinstance(prep.body, str):
                kwargs["data"] = prep.body.encode()
            else:
                kwargs["json"] = prep.body
        statuses = check.expect.statuses()
        # A check that expects a redirect (`status: 301`) judges the first one it gets: a 302
        # in its place is the answer ("-> 302, expected 301"), not a hop to follow.
        follow = not any(300 <= s < 400 for s in statuses)
        start = time.perf_counter()
        end = start + limit_s
        # Clipped: the deadline left this request much less than its timeout (a few ms less is
        # the time the attempt took to start, and waiting that long for no answer is news).
        clipped = limit_s < 0.9 * check.timeout
        # How long the answer was waited for: the check's timeout, or what was left of the
        # deadline when that was much less.
        waited = format_duration(check.timeout)
        if clipped:
            waited = format_duration(round(limit_s, 3 if limit_s < 1 else 1))
            waited += " (what was left of the check's deadline)"
        connect_s = read_s = 0.0
        hops: list[str] = []
        for hop in range(MAX_REDIRECTS + 1):
            left = end - time.perf_counter()
            read_s = min(check.timeout, left)
            connect_s = min(CONNECT_TIMEOUT_CAP, read_s)
            if left <= 0:
                return Sample(
                    no_answer=f"no answer within {format_duration(limit_s)}",
                    elapsed_s=time.perf_counter() - start,
                    timed_out=True,
                    deadline_cut=clipped,
                )
            late = lookup_in_time(url, left, self._stopped)
            if late is not None:
                host = one_line(urlsplit(url).hostname or "", 120, self._mask)
                why = (
                    f"the run was stopped while the name {host} was looked up"
                    if late == "stopped"
                    else f"DNS did not answer for {host} within {format_duration(limit_s)}"
                )
                elapsed = time.perf_counter() - start
                cut = clipped and late == "late"
                return Sample(no_answer=why, elapsed_s=elapsed, deadline_cut=cut)
            watchdog = _Watchdog(session, left)
            try:
                with (
                    watchdog,
                    session.request(
                        method,
                        url,
                        headers=headers,
                        timeout=(connect_s, read_s),
                        allow_redirects=False,
                        verify=True,
                        stream=True,
                        **kwargs,
                    ) as response,
                ):
                    body, truncated, complete = _read_body(
                        response, end, self._stopped, keep=prep.keep_body
                    )
                    elapsed = time.perf_counter() - start
                    if not complete:
                        if self._stopped():
                            why = "the run was stopped while the answer came in"
                            return Sample(no_answer=why, elapsed_s=elapsed)
                        why = f"answer not complete within {waited}"
                        return Sample(
                            no_answer=why, elapsed_s=elapsed, timed_out=True, deadline_cut=clipped
                        )
                    status = response.status_code
                    location = redirect_location(response.headers)
                    if 300 <= status < 400 and location and follow:
                        target = urljoin(url, location)
                        refusal = self._redirect_refusal(prep.url, target)
                        if refusal is None and hop == MAX_REDIRECTS:
                            refusal = f"more than {MAX_REDIRECTS} redirects"
                        if refusal is None:
                            if _origin(target) != _origin(url):
                                # As browsers do: credentials are for the origin they were set for.
                                headers = {
                                    k: v
                                    for k, v in headers.items()
                                    if k.lower() not in _CREDENTIAL_HEADERS
                                }
                            hops.append(f"{status} {self._hop_shown(prep.url, target)}")
                            url = target
                            # As RFC 9110 and requests do: a 303 turns the request into a GET,
                            # but a HEAD stays a HEAD (its answer has no body to fetch).
                            see_other = status == 303 and method != "HEAD"
                            if see_other or (status in (301, 302) and method == "POST"):
                                method, kwargs = "GET", {}
                            continue
                        # Cut: a Location is the service's text, and can be 60 KB of it.
                        shown = one_line(redact_url(target), 200, self._mask)
                        finding = Finding(
                            "redirect",
                            "fail",
                            f"redirect to {shown} (not followed: {refusal})",
                            f"-> {status} redirect to {shown}, not followed: {refusal}",
                        )
                        return Sample(
                            status,
                            response.headers,
                            body,
                            truncated,
                            elapsed,
                            redirect=finding,
                            redirects=tuple(hops),
                        )
                    return Sample(
                        status, response.headers, body, truncated, elapsed, redirects=tuple(hops)
                    )
            except requests.RequestException as exc:
                # Timed out: the request reached the service and its answer took longer than
                # this (a connect timeout or a refusal says nothing of how fast it answers).
                timed_out = cut = False
                if self._stopped():  # cut by the stop (httpsession), not the service's doing
                    why = "the run was stopped while the request waited for its answer"
                elif watchdog.fired:
                    why = f"answer not complete within {waited}"
                    timed_out = cut = True
                else:
                    why = describe_no_answer(
                        exc, connect_s=connect_s, read_s=read_s, mask=self._mask
                    )
                    timed_out = _timed_out(exc)
                    cut = timed_out or isinstance(exc, requests.exceptions.ConnectTimeout)
                elapsed = time.perf_counter() - start
                return Sample(
                    no_answer=why,
                    elapsed_s=elapsed,
                    timed_out=timed_out,
                    deadline_cut=clipped and cut,
                )
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns

    def _hop_shown(self, first_url: str, target: str) -> str:
        """Where a redirect leads, as a message shows it: its path and query on the check's
        own origin, else the whole URL without credentials; masked, and cut."""
        if _origin(target) == _origin(first_url):
            parts = urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        return one_line(redact_url(target), 80, self._mask)

    def _attempt(
        self, prep: _Prepared, deadline: float
    ) -> tuple[list[Sample], list[list[Finding]], int]:
        """One attempt: `samples` requests, up to `concurrency` at once, none after deadline;
        the samples, the findings of each, and how many were not taken."""
        check = prep.check
        assert isinstance(check, HttpCheck)  # noqa: S101

        def one(i: int) -> tuple[Sample, list[Finding]] | None:
            left = deadline - self._clock()
            if left <= 0 or self._stopped():
                return None
            sample = self._request(prep, min(check.timeout, left))
            with self._judge_lock:
                found = sample_findings(check, sample, self._mask)
            # Judged, a body is needed no more but for its excerpt, except the last one's (a
            # pass shows its JSON): 1,000 samples of a 4 MiB body must not take 4 GB. So at
            # most `concurrency` bodies of MAX_BODY_BYTES are held at once, and one parsed.
            if i < check.samples - 1 and len(sample.body) > _EXCERPT_BYTES:
                sample = replace(sample, body=sample.body[:_EXCERPT_BYTES])
            return sample, found

        if check.concurrency > 1 and check.samples > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(check.concurrency, check.samples)) as pool:
                taken = list(pool.map(one, range(check.samples)))
        else:
            taken = [one(i) for i in range(check.samples)]
        done = [t for t in taken if t is not None]
        samples = [sample for sample, _ in done]
        return samples, [found for _, found in done], check.samples - len(samples)

    def _judge(
        self,
        prep: _Prepared,
        samples: list[Sample],
        per_sample: list[list[Finding]],
        skipped: int,
        budget: float,
    ) -> Verdict:
        check = prep.check
        assert isinstance(check, HttpCheck)  # noqa: S101
        expect = check.expect
        wanted = check.samples
        answered = [s for s in samples if s.answered]
        if not answered:
            # Nothing answered: that staging does not answer is the news, not how slow it is.
            per_sample = [
                [f for f in found if not (s.timed_out and f.kind == "time")]
                for s, found in zip(samples, per_sample, strict=True)
            ]
        findings = merge_samples(per_sample, wanted, expect.max_time)
        timings = tuple(round(s.elapsed_s * 1000, 3) for s in samples if s.answered)
        # A sample that timed out took at least as long as it was waited for: with those lower
        # bounds among the times, a percentile can only be higher than the one computed, so
        # one over its limit is over it whatever the missing answers would have been.
        # It is exact when every such wait is longer: the times at or below it are all known.
        slow = tuple(round(s.elapsed_s * 1000, 3) for s in samples if s.timed_out and answered)
        bounds = timings + slow
        measured: dict[str, float] = {}
        floors: set[str] = set()
        if bounds and wanted > 1:
            for pname in ("p50", "p95", "p99"):
                measured[pname] = nearest_rank(bounds, float(pname[1:]))
                if any(wait <= measured[pname] for wait in slow):
                    floors.add(pname)
        if bounds:
            limits = expect.percentiles()
            for pname, limit in limits.items():
                value = measured[pname]
                if value > limit * 1000:
                    over = f"{pname} {'at least ' if pname in floors else ''}{fmt_ms(value)}"
                    counted = f"{len(bounds)} samples"
                    if slow:
                        counted += f", {len(slow)} of them without an answer in time"
                    findings.append(
                        Finding(
                            pname,
                            "fail",
                            f"{over} over {counted}",
                            f"{over} over {counted}, expected <= {format_duration(limit)}",
                        )
                    )
        if skipped:
            if self._stopped():
                why = "the run was stopped"
            else:
                why = f"the deadline ({format_duration(budget)}) came"
            if not answered:
                got = f"no answer to any sample: {why}"
            else:
                got = f"only {len(samples)} of {wanted} samples taken: {why}"
            findings.append(Finding("short", "inconclusive", got, got))
        last = excerpt_source(samples, per_sample)
        return Verdict(
            findings, answered, measured, timings if wanted > 1 else (), last, frozenset(floors)
        )

    def _run_http(self, prep: _Prepared) -> CheckResult:
        check = prep.check
        assert isinstance(check, HttpCheck)  # noqa: S101
        attempts = check.retry.attempts
        started = self._clock()
        if check.deadline is not None:
            budget = check.deadline
        else:
            rounds = math.ceil(check.samples / check.concurrency)
            budget = check.timeout * rounds * attempts + check.retry.interval * (attempts - 1)
        deadline = started + budget
        attempt = shown = 0
        cut = ""
        judged: Verdict | None = None
        while True:
            attempt += 1
            samples, per_sample, skipped = self._attempt(prep, deadline)
            verdict = self._judge(prep, samples, per_sample, skipped, budget)
            if judged is not None and self._cut_short(verdict, samples):
                # The deadline came in this attempt, before staging had its time to answer:
                # "no answer within 3ms" would hide the 503 that the attempt before got.
                cut = f"attempt {attempt} cut short by the deadline {format_duration(budget)}; "
                verdict = judged
                break
            if verdict.outcome == "pass" and judged is not None:
                # A pass after retries says what the attempt before it found: a latency met
                # once in three tries, or a 500 before the 200, is not the same news as a pass.
                before = one_line("; ".join(f.phrase for f in _said(check, judged)), 160)
                cut = f"attempt {attempt - 1}: {before}; "
            judged, shown = verdict, attempt
            if verdict.outcome == "pass" or attempt >= attempts or self._stopped():
                break
            # A service that says when to come back (429, 503 with Retry-After) is asked again
            # then, not at once: an attempt sooner would only be turned away too.
            asked = retry_after(verdict.answered)
            pause = max(check.retry.interval, asked or 0.0)
            if self._clock() + pause >= deadline:
                if asked is not None and asked > check.retry.interval:
                    cut = (
                        f"the service asked to retry after {format_duration(asked)}, past the "
                        f"deadline {format_duration(budget)}; "
                    )
                else:
                    cut = f"deadline {format_duration(budget)} reached; "
                break
            self._pause(pause)
            if self._stopped():
                cut = "the run was stopped; "
                break
        duration_ms = round((self._clock() - started) * 1000)
        retry_safe = check.method in ("GET", "HEAD")
        return self._http_result(
            prep,
            verdict,
            attempt=shown,
            made=attempt,
            duration_ms=duration_ms,
            retry_safe=retry_safe,
            cut=cut,
        )

    def _cut_short(self, verdict: Verdict, samples: list[Sample]) -> bool:
        """Whether an attempt is inconclusive only because the check's deadline came in it:
        its samples without an answer were given less than their timeout, or never taken."""
        if verdict.outcome != "inconclusive" or self._stopped():
            return False
        kinds = {f.kind for f in verdict.findings if f.outcome == "inconclusive"}
        unanswered = [s for s in samples if not s.answered]
        return kinds <= {"no-answer", "short"} and all(s.deadline_cut for s in unanswered)

    def _http_result(
        self,
        prep: _Prepared,
        verdict: Verdict,
        *,
        attempt: int,
        made: int,
        duration_ms: int,
        retry_safe: bool,
        cut: str,
    ) -> CheckResult:
        """The result of the check, as `attempt` judged it; `made` attempts were made."""
        check = prep.check
        assert isinstance(check, HttpCheck)  # noqa: S101
        outcome = verdict.outcome
        safety = "retry safe" if retry_safe else "retry not safe"
        suffix = f"attempt {attempt}/{check.retry.attempts}; {cut}{safety}"
        if check.samples > 1:
            extra = ""
            # A percentile the message names already (failing, or a limit met) is not said twice.
            named = {f.kind for f in verdict.findings}
            if outcome == "pass":
                named |= set(check.expect.percentiles())
            shown = next((p for p in ("p50", "p95") if p not in named), None)
            if shown and shown in verdict.measured:
                floor = "at least " if shown in verdict.floors else ""
                extra = f"; {shown} {floor}{fmt_ms(verdict.measured[shown])}"
            answered = len(verdict.answered)
            count = f"{answered}" if answered == check.samples else f"{answered} of {check.samples}"
            suffix = f"{count} samples{extra}; {suffix}"
        if outcome == "pass":
            got = pass_got(check, verdict, self._mask)
            statuses = sorted({s.status for s in verdict.answered if s.status is not None})
            via = verdict.last.via if verdict.last is not None else ""
            head = f"-> {via}{' / '.join(map(str, statuses))}"
            for pname, limit in check.expect.percentiles().items():
                head += f"; {pname} {fmt_ms(verdict.measured[pname])} <= {format_duration(limit)}"
            message = f"{prep.label} {head} ({suffix})"
        else:
            worst = _said(check, verdict)
            got = "; ".join(f.got for f in worst)
            message = f"{prep.label} {'; '.join(f.phrase for f in worst)} ({suffix})"
        excerpt = ""
        if verdict.last is not None:
            excerpt = self._excerpt(verdict.last.headers, verdict.last.body)
        return CheckResult(
            name=self._mask(prep.name),
            outcome=outcome,
            expected=self._mask(expected_text(check)),
            got=printable(self._mask(got)),
            message=one_line(message, 400, self._mask),
            attempts=made,
            duration_ms=duration_ms,
            retry_safe=retry_safe,
            excerpt=excerpt,
            timings_ms=verdict.timings,
        )

    def _excerpt(self, headers: Mapping[str, str], body: bytes) -> str:
        # Masked before it is cut, so that a secret across the cut cannot leave half of itself;
        # escaped, because it is the service's text and is printed to a terminal.
        text = body_text(headers, body[:_EXCERPT_BYTES], cut=len(body) >= _EXCERPT_BYTES)[0]
        return printable(self._mask(text[: EXCERPT_CHARS + 4096]))[:EXCERPT_CHARS]

    # --- commands -----------------------------------------------------------------------------

    def _run_command(self, prep: _Prepared) -> CheckResult:
        # Imported here: the process module is only needed by command checks.
        from drillbook.process import run_command

        check = prep.check
        assert isinstance(check, RunCheck)  # noqa: S101
        env = {k: _fill(v, self.placeholders) for k, v in check.env.items()}
        env.update({f"DRILLBOOK_{k.upper()}": v for k, v in self.placeholders.items()})
        env.update(self._command_env)
        expect = check.expect
        attempts = check.retry.attempts
        # Nobody declared a command free of side effects; a runbook that retries it says it is.
        retry_safe = attempts > 1
        started = self._clock()
        budget = check.timeout * attempts + check.retry.interval * (attempts - 1)
        deadline = started + budget
        attempt = 0
        while True:
            attempt += 1
            timeout = max(0.001, min(check.timeout, deadline - self._clock()))
            needle = expect.output_contains
            # All the output is searched, not only the tail that is kept, and as one text: a
            # needle may run across lines, or across the cut of a line too long to hold whole.
            search = TextSearch(needle) if needle is not None else None
            result = run_command(
                prep.argv,
                cwd=self._cwd or Path.cwd(),
                env=env,
                shell=check.shell,
                timeout=timeout,
                on_text=search.feed if search is not None else None,
                masker=self._masker,
                stop=self._stop,
                on_start=self._on_command_start,
            )
            found = search is not None and search.found
            outcome, got, phrase = judge_command(expect, result, timeout, found=found)
            if outcome == "pass" or attempt >= attempts or self._stopped():
                break
            if self._clock() + check.retry.interval >= deadline:
                break
            self._pause(check.retry.interval)
            if self._stopped():
                break
        safety = "retry safe" if retry_safe else "retry not safe"
        expected = _command_expected(expect)
        message = f"{prep.label} {phrase} (attempt {attempt}/{attempts}; {safety})"
        return CheckResult(
            name=self._mask(prep.name),
            outcome=outcome,
            expected=self._mask(expected),
            got=self._mask(got),
            message=one_line(message, 400, self._mask),
            attempts=attempt,
            duration_ms=round((self._clock() - started) * 1000),
            retry_safe=retry_safe,
            # A command's output may be staging's answer (`curl`): escaped as a body's is.
            excerpt=printable(self._mask(result.output_tail), lines=True)[-EXCERPT_CHARS:],
            argv=tuple(result.argv),
            exit=result.exit,
        )

    def _not_run(self, prep: _Prepared) -> CheckResult:
        """Inconclusive, and nothing sent or started: the check names a placeholder that has
        no value here, so whatever it found would not be what it means to check."""
        check = prep.check
        names = ", ".join("{" + key + "}" for key in prep.unfilled)
        why = (
            "no version was released before this one"
            if prep.unfilled == ("previous",)
            else "they have no value in this run"
        )
        got = f"not run: it needs {names}, and {why}"
        expected = (
            _command_expected(check.expect) if isinstance(check, RunCheck) else expected_text(check)
        )
        return CheckResult(
            name=self._mask(prep.name),
            outcome="inconclusive",
            expected=self._mask(expected),
            got=got,
            message=one_line(f"{prep.label} {got} (retry safe: nothing was done)", 400, self._mask),
            attempts=0,
            duration_ms=0,
            retry_safe=True,
            excerpt="",
            argv=_masked_argv(prep.argv, self._mask) if isinstance(check, RunCheck) else None,
            exit=None,
        )

    # --- shared -------------------------------------------------------------------------------

    def _execute(self, prep: _Prepared) -> CheckResult:
        if prep.unfilled:
            return self._not_run(prep)
        if isinstance(prep.check, RunCheck):
            return self._run_command(prep)
        return self._run_http(prep)

    def _mask(self, text: str) -> str:
        # Staging's text may split a secret with an escape sequence it shows through.
        return self._masker.mask_unseen(text) if self._masker is not None and text else text

    def _stopped(self) -> bool:
        return self._stop is not None and self._stop.stopped

    def _pause(self, seconds: float) -> None:
        """Wait between attempts; with a stop token, in short slices so a stop ends the wait."""
        if self._stop is None:
            self._sleep(seconds)
            return
        left = seconds
        # Counted down rather than read from the clock, so an injected clock cannot stall it.
        while left > 0 and not self._stop.stopped:
            self._sleep(min(left, 0.05))
            left -= 0.05


def _masked_argv(argv: Sequence[str] | str, mask: Callable[[str], str]) -> tuple[str, ...]:
    """A command check's argument list as its result names it; a shell's text as `sh -c`."""
    if isinstance(argv, str):
        return ("/bin/sh", "-c", mask(argv))
    return tuple(mask(arg) for arg in argv)


def _command_expected(expect: Any) -> str:
    """What a command check expects, in words: `exit 0; output contains 'ok'`."""
    expected = f"exit {expect.exit}"
    if expect.output_contains is not None:
        expected += f"; output contains {expect.output_contains!r}"
    return expected


#: The kinds of finding that judge how long answers take.
_TIME_KINDS = frozenset(("time", "p50", "p95", "p99"))


def _said(check: HttpCheck, verdict: Verdict) -> list[Finding]:
    """The findings that a result which did not pass says: those of its outcome, and for a
    sampled check that failed, what its other samples found."""
    outcome = verdict.outcome
    worst = [f for f in verdict.findings if f.outcome == outcome]
    if outcome == "fail" and check.samples > 1:
        # What other samples found is no detail of the failure: "500 in 1 of 4" must not hide
        # that the other 3 got no answer at all. Unless a time failed: those that got no
        # answer in time are counted in it, as too slow.
        timed = any(f.kind in _TIME_KINDS for f in worst)
        worst += [
            f
            for f in verdict.findings
            if f.outcome == "inconclusive" and not (timed and f.kind == "no-answer")
        ]
    return worst


_REFUSAL_HINTS = {
    "scheme": "checks speak http or https only",
    "credentials": "send credentials in a header from an environment variable, never in the URL",
    "host": "add the host to the environment's allow_hosts if its checks may reach it",
}


def retry_after(samples: Sequence[Sample], now: float | None = None) -> float | None:
    """The longest wait, in seconds, that answers 429 and 503 ask for in Retry-After (a number
    of seconds or an HTTP date; `now` is the wall clock for a date), or None if none asks."""
    import email.utils

    waits: list[float] = []
    for sample in samples:
        value = sample.headers.get("Retry-After") if sample.status in (429, 503) else None
        if not value:
            continue
        value = value.strip()
        if value.isdigit():
            waits.append(float(value))
            continue
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue  # not a wait we can read: the runbook's interval stands
        if when.tzinfo is not None:
            waits.append(max(0.0, when.timestamp() - (time.time() if now is None else now)))
    return max(waits) if waits else None


def _is_read(check: HttpCheck | RunCheck) -> bool:
    return isinstance(check, HttpCheck) and check.method in ("GET", "HEAD")


class _Watchdog:
    """Cuts the calling thread's request when `seconds` pass: the check's deadline holds even
    for a status line or headers sent a byte at a time, which no read timeout notices.

    A no-op for a session that cannot cut one thread's connection (one a caller passed in).
    """

    def __init__(self, session: Any, seconds: float) -> None:
        self.fired = False
        self._deadlines = getattr(session, "drillbook_deadlines", None)
        self._seconds = seconds + 0.05  # after the request's own timeouts had their turn
        self._token: int | None = None

    def __enter__(self) -> _Watchdog:
        if self._deadlines is not None:
            self._token = self._deadlines.arm(self._seconds)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._deadlines is not None and self._token is not None:
            self.fired = self._deadlines.disarm(self._token)


def _read1(raw: Any) -> bytes:
    """What has arrived of a body, urllib3's errors raised as requests raises them when it
    reads a body itself (`Response.iter_content`), so that one handler sees them all."""
    import requests
    from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

    try:
        return raw.read1(_CHUNK, decode_content=True)
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from exc
    except SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc


def _read_body(
    response: Any,
    end: float,
    stopped: Callable[[], bool] = lambda: False,
    keep: int = MAX_BODY_BYTES,
) -> tuple[bytes, bool, bool]:
    """The body (at most MAX_BODY_BYTES), whether it was cut, whether it came before `end`.

    Only its first `keep` bytes are kept: a check that judges no body (a status, a p95) shows
    only an excerpt of it, yet reads it all, up to the cap, as its time includes it.

    Each read returns what has arrived (`read1`), not a full chunk: a server that sends a byte
    every half second never trips the socket's read timeout, and a reader that waited for
    full chunks would wait for the whole body, past the check's deadline and past a Ctrl-C.
    So the deadline and the run's stop are looked at after every arrival; the overshoot is at
    most one read timeout.
    """
    raw = response.raw
    keep = min(keep, MAX_BODY_BYTES)
    chunks: list[bytes] = []
    size = kept = 0
    while True:
        chunk = _read1(raw)
        if not chunk:
            break
        size += len(chunk)
        if kept < keep:
            # Cut before the join: one copy of what is kept, not a join and then a slice.
            chunk = chunk[: keep - kept]
            chunks.append(chunk)
            kept += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"".join(chunks), True, True
        if time.perf_counter() > end or stopped():
            return b"", False, False
    return b"".join(chunks), False, True
