"""Judging answers against a check's `expect`: findings, verdicts and the words for them.

Everything here is pure: it judges answers already received and sends no request, runs no
process and reads no clock; `drillbook.checks` does those and hands the answers here.
`sample_findings` lists what one HTTP sample fails to meet, `merge_samples` folds the findings
of many samples into one per kind, and a `Verdict` takes the worst of them as its outcome (fail over
inconclusive over pass); `judge_command` judges a command's result. `expected_text` and
`pass_got` word what was expected and what came back. `json_path` and `json_matches` read and
compare JSON by dotted path; `nearest_rank` gives the percentiles.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from drillbook.model import HttpCheck, RunExpect, format_duration

if TYPE_CHECKING:
    from drillbook.process import CommandResult

Outcome = Literal["pass", "fail", "inconclusive"]
#: How bad each outcome is: an attempt's outcome is that of its worst finding.
_RANK = {"pass": 0, "inconclusive": 1, "fail": 2}

#: Replaces the secrets in a text with `***` (`Masker.mask`). Words that show the service's text
#: cut it, and a secret must be masked before the cut: after it, only its head is left, which
#: no masker knows.
Mask = Callable[[str], str]


def unmasked(text: str) -> str:
    """The `Mask` where there are no secrets."""
    return text


def fmt_ms(ms: float) -> str:
    """Milliseconds as a person reads them: one decimal below 10 ms, whole above."""
    return f"{ms:.1f}ms" if ms < 10 else f"{round(ms)}ms"


# Control characters (C0, DEL, C1) and the bidirectional controls: a staging's answer holds
# what its authors, or an attacker, put there, and an escape sequence that reaches the
# terminal of the person on call can clear it, retitle it or paint a fake "ok" line.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str, *, lines: bool = False) -> str:
    """The text with every control character written as its escape (`\\x1b`, `\\n`);
    `lines`: line breaks and tabs stay as they are (a command's output, shown as lines)."""

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if lines and char in "\n\t":
            return char
        code = ord(char)
        return _ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")

    return _UNPRINTABLE.sub(escape, text)


def _show(value: Any, limit: int = 80, mask: Mask = unmasked) -> str:
    """A JSON value as a person reads it: text bare, a number of the runbook as it is written
    there (`1.10`, which YAML reads as 1.1), everything else as JSON; masked, then cut."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float) and isinstance(getattr(value, "text", None), str):
        text = value.text  # yamlsafe's SourceInt and SourceFloat
    else:
        text = json.dumps(value, ensure_ascii=False)
    text = printable(mask(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str, limit: int, mask: Mask = unmasked) -> str:
    """The text on one line (whitespace runs made one space, control characters escaped),
    masked, then cut to `limit` characters."""
    text = printable(" ".join(mask(text).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Finding:
    """One expectation that does not hold, in one sample."""

    kind: str
    outcome: Outcome
    got: str  # e.g. "status 503"
    phrase: str  # e.g. "-> 503, expected 200", read after the check's label
    weight: float = 0.0  # orders findings of one kind across samples (the slowest time wins)


@dataclass
class Sample:
    """One request's answer, or why there was none."""

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncated: bool = False
    elapsed_s: float = 0.0
    no_answer: str | None = None
    redirect: Finding | None = None
    #: No answer because none was complete after `elapsed_s`: it takes longer than that.
    timed_out: bool = False
    #: No answer in the time that was left of the check's deadline, less than its timeout:
    #: the service was not given its time, so this says nothing of it.
    deadline_cut: bool = False
    #: The redirects followed to this answer, each as its status and where it led ("302 /login").
    redirects: tuple[str, ...] = ()

    @property
    def answered(self) -> bool:
        """Whether the request got an answer (any status counts)."""
        return self.no_answer is None

    @property
    def via(self) -> str:
        """The redirects followed to the answer, as a message shows them before its status
        ("302 /login -> "), or "" when there were none."""
        return "".join(f"{hop} -> " for hop in self.redirects)


@dataclass
class Verdict:
    """One attempt judged: its findings and what was measured."""

    findings: list[Finding]
    answered: list[Sample]
    measured: dict[str, float]
    timings: tuple[float, ...]
    last: Sample | None
    #: The percentiles of `measured` that are floors: timed-out samples count with their wait.
    floors: frozenset[str] = frozenset()

    @property
    def outcome(self) -> Outcome:
        """The worst outcome among the findings; pass when there are none."""
        worst: Outcome = "pass"
        for f in self.findings:
            if _RANK[f.outcome] > _RANK[worst]:
                worst = f.outcome
        return worst


def nearest_rank(values: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile: the smallest value with at least `percent`% at or below."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


_MISSING = object()


def json_path(data: Any, path: str) -> Any:
    """The value at a dotted path (`data.items.0.id`); a key holding dots is found too."""
    parts = path.split(".")

    def walk(current: Any, i: int) -> Any:
        if i == len(parts):
            return current
        if isinstance(current, dict):
            # Longest key first, so that a key written with dots ("app.version") still matches;
            # when the rest of the path is not under it, a shorter key is tried (`app` holding
            # `version`), so that a body with both is read either way.
            for j in range(len(parts), i, -1):
                key = ".".join(parts[i:j])
                if key in current:
                    found = walk(current[key], j)
                    if found is not _MISSING:
                        return found
            return _MISSING
        if isinstance(current, list) and re.fullmatch(r"-?\d+", parts[i]):
            index = int(parts[i])
            if not -len(current) <= index < len(current):
                return _MISSING
            return walk(current[index], i + 1)
        return _MISSING

    return walk(data, 0)


def json_matches(expected: Any, actual: Any) -> bool:
    """Whether `actual` holds `expected`: mappings as a subset (by dotted path), rest equal."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False
        return all(json_matches(v, json_path(actual, str(k))) for k, v in expected.items())
    if actual is _MISSING:
        return False
    # true is not 1 and 1 is not "1": the types must agree, except int against float.
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return expected == actual
    if type(expected) is not type(actual):
        return False
    if isinstance(expected, list):
        return len(expected) == len(actual) and all(map(json_matches, expected, actual))
    return expected == actual


def _expected_statuses(statuses: list[int]) -> str:
    return " or ".join(map(str, statuses)) if statuses else "2xx"


def expected_text(check: HttpCheck) -> str:
    """What an HTTP check expects, in words, for a result's `expected`."""
    expect = check.expect
    parts = [f"status {_expected_statuses(expect.statuses())}"]
    if expect.json_:
        parts.append("json " + ", ".join(f"{k}={_show(v)}" for k, v in expect.json_.items()))
    if expect.body_contains is not None:
        parts.append(f"body contains {expect.body_contains!r}")
    for hname, value in (expect.header or {}).items():
        parts.append(f"header {hname}: {value}")
    if expect.max_time is not None:
        parts.append(f"time <= {format_duration(expect.max_time)}")
    for pname, limit in expect.percentiles().items():
        parts.append(f"{pname} <= {format_duration(limit)}")
    return "; ".join(parts)


def sample_findings(check: HttpCheck, sample: Sample, mask: Mask = unmasked) -> list[Finding]:
    """Every expectation one sample does not meet (percentiles are judged over all samples).

    What the words show of the answer is masked with `mask` before it is cut."""
    if sample.no_answer is not None:
        why = f"no answer: {sample.no_answer}"
        found = [Finding("no-answer", "inconclusive", why, why)]
        limit_s = check.expect.max_time
        if sample.timed_out and limit_s is not None and sample.elapsed_s > limit_s:
            # No answer within a time already over the limit: the answer is too slow, whatever
            # it would have been (judged so when other samples answered: `CheckRunner._judge`).
            took = fmt_ms(sample.elapsed_s * 1000)
            limit = format_duration(limit_s)
            found.append(
                Finding(
                    "time",
                    "fail",
                    f"no answer within {took}",
                    f"no answer within {took}, expected <= {limit}",
                    weight=sample.elapsed_s,
                )
            )
        return found
    if sample.redirect is not None:
        return [sample.redirect]
    expect = check.expect
    found: list[Finding] = []
    statuses = expect.statuses()
    status = sample.status or 0
    if (status not in statuses) if statuses else not 200 <= status < 300:
        found.append(
            Finding(
                "status",
                "fail",
                f"status {status}" + (f" via {sample.via[:-4]}" if sample.redirects else ""),
                f"-> {sample.via}{status}, expected {_expected_statuses(statuses)}",
            )
        )
    if expect.json_:
        found.extend(_json_findings(expect.json_, sample, mask))
    if expect.body_contains is not None:
        text, charset, clean = body_text(sample.headers, sample.body, cut=sample.truncated)
        needle = expect.body_contains
        if needle not in text and sample.truncated:
            # Only the first 4 MiB were read: what was not read may hold it.
            why = f"cannot check body_contains: no {needle!r} in the first 4 MiB, the rest not read"
            found.append(Finding("body", "inconclusive", why, why))
        elif needle not in text:
            why = "" if clean else f" (the body is not valid {charset})"
            found.append(
                Finding(
                    "body",
                    "fail",
                    f"body without {needle!r}{why}",
                    f"body does not contain {needle!r}{why}",
                )
            )
    for hname, value in (expect.header or {}).items():
        actual = header_value(sample.headers, hname)
        if actual is None or actual != value.strip(" \t"):
            seen = "missing" if actual is None else f"is {one_line(actual, 80, mask)}"
            got = f"header {hname} {seen}" if actual is None else f"header {hname}: {actual}"
            found.append(
                Finding(
                    "header",
                    "fail",
                    one_line(got, 120, mask),
                    f"header {hname} {seen}, expected {value}",
                )
            )
    if expect.max_time is not None and sample.elapsed_s > expect.max_time:
        took = fmt_ms(sample.elapsed_s * 1000)
        limit = format_duration(expect.max_time)
        found.append(
            Finding(
                "time",
                "fail",
                f"time {took}",
                f"took {took}, expected <= {limit}",
                weight=sample.elapsed_s,
            )
        )
    return found


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value as HTTP defines it, or None when it is absent: without the whitespace
    around it (RFC 9110: it is not part of the value), its bytes read as UTF-8 when they are
    UTF-8 (http.client gives them as Latin-1, which turns `café` into `cafÃ©`)."""
    value = headers.get(name)  # requests' headers ignore case
    if value is None:
        return None
    value = value.strip(" \t")
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def declared_charset(headers: Mapping[str, str]) -> str | None:
    """The charset the Content-Type names, when Python knows it (`latin-1`), else None."""
    params = headers.get("Content-Type", "").split(";")[1:]
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip("\"'")).name
            except LookupError:
                return None
    return None


#: Byte order marks and the charset each says; UTF-32's first, as they begin with UTF-16's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def body_text(
    headers: Mapping[str, str], body: bytes, *, cut: bool = False
) -> tuple[str, str, bool]:
    """The body as text: the text, its charset, and whether every byte was valid in it (those
    that were not are replaced). `cut`: the body is a prefix, so it may end inside a character.

    UTF-8 is tried before the charset the Content-Type names: a UTF-8 page labelled Latin-1 is
    a common slip, and bytes that are valid UTF-8 and meant as Latin-1 are rare. A UTF-16 or
    -32 label comes first, since such text of ASCII letters is valid UTF-8 too. A byte order
    mark comes before any label, as browsers read it (WHATWG's decode): UTF-16 read as UTF-8
    is each letter with a NUL after it, which no masker recognises as the secret it spells.
    """
    declared = declared_charset(headers)
    order = ["utf-8"]
    if declared and declared.startswith(("utf-16", "utf-32")):
        order.insert(0, declared)
    elif declared and declared != "utf-8":
        order.append(declared)
    marked = next((charset for bom, charset in _BOMS if body.startswith(bom)), None)
    if marked is not None:
        order.insert(0, marked)
    for charset in order:
        decoder = codecs.getincrementaldecoder(charset)()
        try:
            return decoder.decode(body, final=not cut), charset, True
        except UnicodeDecodeError:
            continue
    charset = declared or "utf-8"
    return body.decode(charset, errors="replace"), charset, False


def _load_json(sample: Sample) -> Any:
    """The body as JSON; raises ValueError (UnicodeDecodeError) or RecursionError."""
    # JSON is UTF-8 (RFC 8259: application/json has no charset parameter), and json.loads
    # finds UTF-16 and -32 from the bytes; only bytes that are none of those are read in the
    # charset the Content-Type names, if it names one.
    try:
        return json.loads(sample.body)
    except UnicodeDecodeError:
        charset = declared_charset(sample.headers)
        if charset is None or charset.startswith("utf"):
            raise
        return json.loads(sample.body.decode(charset))


def _json_findings(wanted: Mapping[str, Any], sample: Sample, mask: Mask) -> list[Finding]:
    try:
        data = _load_json(sample)
    except (ValueError, UnicodeDecodeError):
        if not sample.body.strip():
            # A 204, or a 200 with nothing in it: "not JSON (application/json)" reads as garbage.
            why = f"cannot check json: the body is empty (status {sample.status})"
            return [Finding("json-unreadable", "inconclusive", why, why)]
        ctype = sample.headers.get("Content-Type", "no content type")
        size = "the first 4 MiB of " if sample.truncated else ""
        why = f"cannot check json: {size}the body is not JSON ({one_line(ctype, 60, mask)})"
        return [Finding("json-unreadable", "inconclusive", why, why)]
    except RecursionError:
        # `[[[[...` a few thousand deep is valid JSON that no parser on a stack can read.
        why = "cannot check json: the body's JSON is nested too deep to read"
        return [Finding("json-unreadable", "inconclusive", why, why)]
    found = []
    # A path is missing from `[...]` or `42` because the body is not an object: say what it is.
    shape = "" if isinstance(data, dict) else f" (the body is {_json_kind(data, mask)})"
    for path, value in wanted.items():
        actual = json_path(data, str(path))
        if not json_matches(value, actual):
            missing = f"missing{shape}"
            if actual is _MISSING:
                seen, got = missing, f"json {path} {missing}"
            else:
                shown = _show(actual, mask=mask)
                seen, got = f"is {shown}", f"json {path}={shown}"
            wanted_shown = _show(value)
            if actual is not _MISSING and shown == wanted_shown:
                # 3 and "3", true and "true": alike on the page, so the kinds are named.
                seen, wanted_shown = f"is {_typed(actual, mask)}", _typed(value, unmasked)
                got = f"json {path}={_typed(actual, mask)}"
                if isinstance(actual, str) and not isinstance(value, str):
                    # YAML reads `version: 1.10` unquoted as a number: the runbook meant text.
                    quoted = _show(json.dumps(actual, ensure_ascii=False), mask=mask)
                    wanted_shown += f" (quoted, {quoted} is text)"
            found.append(
                Finding("json", "fail", got, f"json {path} {seen}, expected {wanted_shown}")
            )
    return found


def _typed(value: Any, mask: Mask) -> str:
    """A JSON value with its kind: `the number 3`, `the text "3"`, `JSON true`."""
    if isinstance(value, str):
        return f"the text {_show(json.dumps(value, ensure_ascii=False), mask=mask)}"
    if isinstance(value, bool) or value is None:
        return f"JSON {json.dumps(value)}"
    if isinstance(value, int | float):
        return f"the number {_show(value, mask=mask)}"
    kind = "list" if isinstance(value, list) else "object"
    return f"the {kind} {_show(value, mask=mask)}"


def _json_kind(data: Any, mask: Mask) -> str:
    """What a JSON value is, in words: `a JSON list of 2`, `the JSON number 42`."""
    if isinstance(data, list):
        return f"a JSON list of {len(data)}"
    if isinstance(data, bool) or data is None:
        return f"JSON {json.dumps(data)}"
    if isinstance(data, int | float):
        return f"the JSON number {_show(data, 40, mask)}"
    return f"the JSON string {_show(json.dumps(data, ensure_ascii=False), 40, mask)}"


def merge_samples(
    per_sample: list[list[Finding]], wanted: int, max_time: float | None
) -> list[Finding]:
    """Findings of all samples, one per kind, with how many samples had it."""
    if wanted == 1:
        return [f for found in per_sample for f in found]
    by_kind: dict[str, tuple[Finding, int]] = {}
    for found in per_sample:
        for f in found:
            seen = by_kind.get(f.kind)
            if seen is None:
                by_kind[f.kind] = (f, 1)
            else:
                example = f if f.weight > seen[0].weight else seen[0]
                by_kind[f.kind] = (example, seen[1] + 1)
    merged = []
    for f, count in by_kind.values():
        share = f" in {count} of {wanted} samples"
        if f.kind == "time" and max_time is not None:
            limit = format_duration(max_time)
            slowest = fmt_ms(f.weight * 1000)
            got = f"{count} of {wanted} samples over {limit} (slowest {slowest})"
            merged.append(Finding(f.kind, f.outcome, got, f"{got}, expected each <= {limit}"))
        else:
            merged.append(Finding(f.kind, f.outcome, f.got + share, f.phrase + share))
    return merged


def excerpt_source(samples: list[Sample], per_sample: list[list[Finding]]) -> Sample | None:
    """The sample whose body is shown: the last one that failed, else the last answered."""
    for sample, found in zip(reversed(samples), reversed(per_sample), strict=True):
        if sample.answered and found:
            return sample
    return next((s for s in reversed(samples) if s.answered), None)


def pass_got(check: HttpCheck, verdict: Verdict, mask: Mask = unmasked) -> str:
    """What came back for a check that passed, in words, for a result's `got`; what it shows
    of the answer is masked with `mask` before it is cut."""
    expect = check.expect
    last = verdict.answered[-1]
    statuses = sorted({s.status for s in verdict.answered if s.status is not None})
    parts = [f"status {' / '.join(map(str, statuses))}"]
    if last.redirects:
        # A 200 of the login page that /admin sends to is not the 200 of /admin: say it.
        parts[0] += f" via {last.via[:-4]}"
    if expect.json_:
        try:
            data = _load_json(last)
        except ValueError:  # pragma: no cover - a pass means it parsed
            data = None
        shown = ", ".join(f"{k}={_show(json_path(data, str(k)), mask=mask)}" for k in expect.json_)
        parts.append(f"json {shown}")
    if expect.body_contains is not None:
        parts.append(f"body contains {expect.body_contains!r}")
    for hname in expect.header or {}:
        parts.append(f"header {hname}: {header_value(last.headers, hname)}")
    if check.samples == 1:
        parts.append(f"time {fmt_ms(last.elapsed_s * 1000)}")
    else:
        slowest = max(s.elapsed_s for s in verdict.answered)
        for pname in expect.percentiles() or {"p95": 0}:
            parts.append(f"{pname} {fmt_ms(verdict.measured[pname])}")
        parts.append(f"slowest {fmt_ms(slowest * 1000)} over {len(verdict.answered)} samples")
    return "; ".join(parts)


class TextSearch:
    """Whether a text turns up in output that comes in pieces, one across their cuts too."""

    def __init__(self, needle: str) -> None:
        self.needle = needle
        self.found = False
        self._carry = ""  # the end of what came, too short to hold the needle whole

    def feed(self, text: str) -> None:
        """Look at the next piece of the output."""
        if self.found:
            return
        joined = self._carry + text
        if self.needle in joined:
            self.found = True
            return
        keep = len(self.needle) - 1
        self._carry = joined[-keep:] if keep else ""


def judge_command(
    expect: RunExpect, result: CommandResult, timeout: float, *, found: bool
) -> tuple[Outcome, str, str]:
    """Outcome, got and the message's phrase for a command's result."""
    detail = one_line(result.detail, 160)
    if result.outcome == "not_found":
        return "inconclusive", detail, detail
    if result.outcome == "timeout":
        got = f"no result: timed out after {format_duration(timeout)}"
        return "inconclusive", got, got
    if result.outcome == "interrupted":
        got = f"no result: {detail}"
        return "inconclusive", got, got
    if result.outcome == "error" or result.exit is None:
        got = f"no result: {detail or 'the command could not run'}"
        return "inconclusive", got, got
    if result.exit < 0:
        # Killed by a signal from outside (the OOM killer, a person): the check did not finish.
        got = f"no result: {detail}"
        return "inconclusive", got, got
    if result.exit != expect.exit:
        got = f"exit {result.exit}"
        return "fail", got, f"-> exit {result.exit}, expected {expect.exit}"
    needle = expect.output_contains
    if needle is not None and not found:
        got = f"exit {result.exit}; output without {needle!r}"
        return "fail", got, f"-> exit {result.exit}, output does not contain {needle!r}"
    got = f"exit {result.exit}"
    if needle is not None:
        got += f"; output contains {needle!r}"
    return "pass", got, f"-> exit {result.exit}"
