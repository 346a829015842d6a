"""Bad runbooks: each one is refused with InvalidInput naming FILE:LINE:COLUMN, the field, what
is wrong, what was expected and what was found; never with another exception.

Most inputs are the SPEC's outline runbook with one small edit. The expected position is found in
the edited text by a snippet (`at`), so a table row reads as "the problem is *here*".
"""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest

from drillbook import yamlsafe
from drillbook.errors import EXIT_INVALID, InvalidInput, Problem
from drillbook.runbook import load_runbook

GOOD = Path(__file__).resolve().parents[1] / "fixtures" / "runbooks" / "good"
BASE = (GOOD / "spec-outline.yaml").read_text(encoding="utf-8")

CHECK_AUDIT = "            - get: /admin/orders/1/audit\n              expect: {status: 200}\n"
EXPECTED_BLOCK = BASE[BASE.index("        expected:") : BASE.index("        rollback:")]
ROLLBACK_BLOCK = BASE[BASE.index("        rollback:") :]


def edit(old: str, new: str, text: str = BASE) -> str:
    """The text with the first `old` replaced; `old` must be there."""
    assert old in text, old
    return text.replace(old, new, 1)


def audit_check_with(line: str) -> str:
    """The runbook with one more line (`headers: ...`) in the audit check."""
    return edit(CHECK_AUDIT, CHECK_AUDIT.replace("\n", f"\n              {line}\n", 1))


def drop(snippet: str, text: str = BASE) -> str:
    """The text without the line that holds `snippet`."""
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if snippet not in line]
    assert len(kept) == len(lines) - 1, snippet
    return "".join(kept)


@dataclass(frozen=True)
class Bad:
    """One bad input and where and how its problem must be reported."""

    id: str
    text: str | bytes
    at: str  # a snippet of the text where the problem is; its first occurrence
    words: tuple[str, ...]  # all must appear in the problem's line (case-insensitive)
    offset: int = 0  # the column is this many characters after the snippet's start
    column: bool = True  # whether the column is asserted too
    field: str | None = None
    absent: tuple[str, ...] = ()  # must not appear anywhere in the output

    def position(self) -> tuple[int, int]:
        text = self.text.decode("utf-8", "replace") if isinstance(self.text, bytes) else self.text
        index = text.index(self.at)
        line = text.count("\n", 0, index) + 1
        column = index - (text.rfind("\n", 0, index) + 1) + 1 + self.offset
        return line, column


CHANGE = "change 'audit-log'"

CASES = [
    # --- broken YAML ---------------------------------------------------------------------------
    Bad(
        "unclosed-quote",
        edit('"#storefront-oncall"', '"#storefront-oncall'),
        at='"#storefront',
        words=("quoted", "not closed", "closing"),
    ),
    Bad(
        "unclosed-quote-at-end",
        BASE + 'notes: "never closed\n',
        at='"never',
        words=("quoted", "never closed"),
    ),
    Bad(
        "tab-indentation",
        edit("    url: http://127.0.0.1:8181", "\turl: http://127.0.0.1:8181"),
        at="\turl",
        words=("tab", "spaces"),
    ),
    Bad(
        "unclosed-flow-list",
        edit("lint: [ruff, check, .]", "lint: [ruff, check, ."),
        at="[ruff",
        words=("not closed", "]"),
    ),
    Bad("empty-file", "", at="", words=("empty", "drillbook: 1")),
    Bad("only-comments", "# nothing yet\n", at="#", words=("empty",)),
    Bad("top-level-list", "- drillbook: 1\n- service: x\n", at="-", words=("mapping", "list")),
    Bad("top-level-text", "just some text\n", at="just", words=("mapping", "'just some text'")),
    Bad(
        "several-documents",
        BASE + "---\ndrillbook: 1\n",
        at="---",
        words=("second YAML document", "one document"),
    ),
    Bad(
        "complex-key",
        edit("owner: team-storefront", "? [a, b]\n: x\nowner: team-storefront"),
        at="[a, b]",
        words=("key", "plain text"),
    ),
    Bad(
        "undefined-alias",
        edit("            - healthy\n            - get: /version", "            - *nothing\n"),
        at="*nothing",
        words=("alias", "*nothing", "no anchor"),
    ),
    # --- wrong types ---------------------------------------------------------------------------
    Bad(
        "timeout-without-unit",
        edit("timeout: 60s", "timeout: 60"),
        at="60\n",
        field="deploy.timeout",
        words=("duration", "unit", "got the number 60", "60s"),
    ),
    Bad(
        "duration-in-words",
        edit("timeout: 2s", "timeout: 2 seconds"),
        at="2 seconds",
        field="checks.healthy.timeout",
        words=("duration", "250ms", "'2 seconds'"),
    ),
    Bad(
        "status-as-text",
        edit("expect: {status: 200}\n", 'expect: {status: "200"}\n'),
        at='"200"',
        field="releases[0].changes[0].expected.checks[2].expect.status",
        words=("HTTP status such as 200, or a list", "got the text '200'", "without quotes"),
    ),
    Bad(
        "status-out-of-range",
        edit("expect: {status: 200}\n", "expect: {status: 700}\n"),
        at="700",
        words=("between 100 and 599", "700"),
    ),
    Bad(
        "status-interim",
        edit("expect: {status: 200}\n", "expect: {status: [200, 103]}\n"),
        at="[200",
        field="releases[0].changes[0].expected.checks[2].expect.status",
        words=("a final HTTP status", "the interim status 103 in the list", "comes before"),
    ),
    Bad(
        "status-list-with-text",
        edit("expect: {status: 200}\n", 'expect: {status: [200, "204"]}\n'),
        at="[200",
        words=("HTTP status", "'204'", "in the list"),
    ),
    Bad(
        "status-boolean",
        edit("expect: {status: 200}\n", "expect: {status: true}\n"),
        at="true}",
        words=("HTTP status", "the boolean true"),
    ),
    Bad(
        "gate-as-one-string",
        edit("lint: [ruff, check, .]", "lint: ruff check ."),
        at="ruff check .",
        field="gates.lint",
        words=("list of arguments", "got the text 'ruff check .'", "shell: true"),
    ),
    Bad(
        "deploy-run-as-one-string",
        edit('run: [python, deploy.py, --env, "{env}", --version, "{version}"]', "run: ./deploy"),
        at="./deploy",
        field="deploy.run",
        words=("list of arguments", "'./deploy'", "shell: true"),
    ),
    Bad(
        "unquoted-placeholder",
        edit('--version, "{version}"]', "--version, {version}]"),
        at="[python",
        field="deploy.run",
        words=("argument 6", "mapping", 'quote the placeholder: "{version}"'),
    ),
    Bad(
        "retry-safe-yes",
        edit("retry_safe: true", "retry_safe: yes"),
        at="yes",
        field="releases[0].changes[0].rollback.retry_safe",
        words=("true or false", "got the text 'yes'", "YAML 1.2", CHANGE),
    ),
    Bad(
        "retry-safe-on",
        edit("retry_safe: true", "retry_safe: on"),
        at="retry_safe: on",
        offset=12,
        words=("true or false", "'on'"),
    ),
    Bad(
        "owner-is-a-number",
        edit("owner: alice", "owner: 42"),
        at="42",
        field="releases[0].changes[0].owner",
        words=("expected text", "got the number 42", CHANGE, "quotes"),
    ),
    Bad(
        "description-is-a-list",
        edit(
            "description: Orders API with an admin area used by support staff.", "description: [a]"
        ),
        at="[a]",
        words=("expected text", "got a list"),
    ),
    Bad(
        "environment-is-text",
        edit(
            "  production:\n    url: https://orders.example.com\n"
            "    config: config/production.env\n",
            "  production: https://orders.example.com\n",
        ),
        at="https://orders",
        field="environments.production",
        words=("expected a mapping", "url: ...", "got the text"),
    ),
    Bad(
        "retry-is-a-number",
        edit("retry: {attempts: 20, interval: 250ms}", "retry: 3"),
        at="3\n",
        words=("mapping", "attempts", "got the number 3"),
    ),
    Bad(
        "steps-as-text",
        edit("steps: []", "steps: ./undo.sh"),
        at="./undo.sh",
        words=("expected a list", "'./undo.sh'"),
    ),
    Bad(
        "json-as-list",
        edit("expect: {json: {version: 1.0.0}}", "expect: {json: [version]}"),
        at="[version]",
        words=("expected a mapping", "got a list"),
    ),
    Bad(
        "check-is-a-number",
        edit("            - admin-responsive", "            - 42"),
        at="42",
        words=("name of a check", "get, head, post or run", "the number 42"),
    ),
    # --- numbers out of range -------------------------------------------------------------------
    Bad(
        "samples-zero",
        edit("samples: 20", "samples: 0"),
        at="0\n",
        field="checks.admin-responsive.samples",
        words=("at least 1", "got the number 0"),
    ),
    Bad(
        "retry-attempts-zero",
        edit("attempts: 20", "attempts: 0"),
        at="attempts: 0",
        offset=10,
        field="checks.healthy.retry.attempts",
        words=("at least 1", "the number 0"),
    ),
    Bad(
        "retry-attempts-negative",
        edit("attempts: 20", "attempts: -3"),
        at="-3",
        words=("at least 1", "the number -3"),
    ),
    Bad(
        "run-exit-past-255",
        edit(CHECK_AUDIT, "            - run: [./smoke]\n              expect: {exit: 256}\n"),
        at="256}",
        field="releases[0].changes[0].expected.checks[2].expect.exit",
        words=("at most 255", "got the number 256"),
    ),
    Bad(
        "run-exit-negative",
        edit(CHECK_AUDIT, "            - run: [./smoke]\n              expect: {exit: -9}\n"),
        at="-9}",
        words=("at least 0", "got the number -9"),
    ),
    Bad(
        "body-contains-empty",
        edit("expect: {status: 200}\n", 'expect: {status: 200, body_contains: ""}\n'),
        at='""}',
        field="releases[0].changes[0].expected.checks[2].expect.body_contains",
        words=("expected some text", "got the text ''"),
    ),
    Bad(
        "output-contains-empty",
        edit(
            CHECK_AUDIT,
            "            - run: [./smoke]\n              expect: {output_contains: ''}\n",
        ),
        at="''}",
        words=("expected some text", "got the text ''"),
    ),
    Bad(
        "p95-without-samples",
        drop("samples: 20"),
        at="p95: 300ms}",
        offset=5,
        field="checks.admin-responsive.expect.p95",
        words=("samples of 2 or more", "p95", "samples 1"),
    ),
    Bad(
        "integer-min-above-max",
        edit("{min: 1, max: 500}", "{min: 500, max: 1}"),
        at="1}}",
        words=("min at most max", "500"),
    ),
    # --- format version, names, versions ---------------------------------------------------------
    Bad(
        "format-version-2",
        edit("drillbook: 1 ", "drillbook: 2 "),
        at="2 ",
        field="drillbook",
        words=("format version 1", "got the number 2", "drillbook: 1"),
    ),
    Bad(
        "format-version-missing",
        drop("drillbook: 1 "),
        at="service:",
        field="drillbook",
        words=("runbook has no `drillbook`", "drillbook: 1"),
    ),
    Bad(
        "service-with-a-space",
        edit("service: demo-service ", "service: demo service "),
        at="demo service",
        field="service",
        words=("letters, digits", "'demo service'", "demo-service"),
    ),
    Bad(
        "version-two-parts",
        edit("version: 1.1.0", "version: 1.0"),
        at="1.0\n",
        field="releases[0].version",
        words=("semver", "got the number 1.0", "1.0.0"),
    ),
    Bad(
        "version-with-v",
        edit("version: 1.1.0", "version: v1.2"),
        at="v1.2",
        words=("semver", "got 'v1.2'", "1.2.0"),
    ),
    Bad(
        "version-with-v-three-parts",
        edit("version: 1.1.0", "version: v1.2.0"),
        at="v1.2.0",
        words=("semver", "drop the v"),
    ),
    Bad(
        "tag-without-version",
        edit("description: Orders", "tag: release\ndescription: Orders"),
        at="release\n",
        field="tag",
        words=("{version}", "got 'release'"),
    ),
    Bad(
        "tag-twice-version",
        edit("description: Orders", 'tag: "{version}-{version}"\ndescription: Orders'),
        at='"{version}-',
        field="tag",
        words=("{version} once", "got '{version}-{version}'"),
    ),
    Bad(
        "tag-not-a-git-name",
        edit("description: Orders", 'tag: "release {version}"\ndescription: Orders'),
        at='"release {',
        field="tag",
        words=("valid git tag name", "got 'release {version}'", "holds a space", "v{version}"),
    ),
    Bad(
        "tag-with-a-placeholder-it-does-not-fill",
        edit("description: Orders", 'tag: "{service}-{env}-v{version}"\ndescription: Orders'),
        at='"{service}-{env}',
        field="tag",
        words=("only {version} and {service}", "{env} would be in the tag", "{service}/v{version}"),
    ),
    Bad(
        "tag-lock-suffix",
        edit("description: Orders", 'tag: "v{version}.lock"\ndescription: Orders'),
        at='"v{version}.lock"',
        field="tag",
        words=("valid git tag name", "ends with '.lock'"),
    ),
    # --- unknown and duplicate keys --------------------------------------------------------------
    Bad(
        "unknown-key-rollbak",
        edit("        rollback:  ", "        rollbak:  "),
        at="rollbak",
        field="releases[0].changes[0].rollbak",
        words=("unknown key `rollbak`", CHANGE, "did you mean `rollback`?"),
    ),
    Bad(
        "unknown-top-level-key",
        edit("environments:  ", "enviroments:  "),
        at="enviroments",
        words=("unknown key `enviroments`", "did you mean `environments`?"),
    ),
    Bad(
        "unknown-key-retrysafe",
        edit("retry_safe: true", "retrysafe: true"),
        at="retrysafe",
        words=("unknown key", "did you mean `retry_safe`?"),
    ),
    Bad(
        "unknown-key-expects",
        edit("    expect: {status: 200, p95: 300ms}", "    expects: {status: 200, p95: 300ms}"),
        at="expects",
        words=("unknown key `expects`", "did you mean `expect`?"),
    ),
    Bad(
        "expect-key-on-the-check",
        edit("    get: /health\n", "    get: /health\n    status: 200\n"),
        at="status: 200\n",
        words=("unknown key `status`", "expect: {status: ...}"),
    ),
    Bad(
        "duplicate-key",
        edit("        owner: alice", "        owner: alice\n        owner: bob"),
        at="owner: bob",
        words=("duplicate key 'owner'", "lines 55 and 56"),
    ),
    Bad(
        "duplicate-top-level-key",
        edit("owner: team-storefront", "service: other\nowner: team-storefront"),
        at="service: other",
        words=("duplicate key 'service'", "lines 3 and 4"),
    ),
    # --- a change without owner, expected or rollback ---------------------------------------------
    Bad(
        "change-without-owner",
        drop("owner: alice"),
        at="id: audit-log",
        field="releases[0].changes[0].owner",
        words=(
            "change 'audit-log' in release 1.1.0 has no `owner`",
            "every change names who owns it",
        ),
    ),
    Bad(
        "change-without-expected",
        BASE.replace(EXPECTED_BLOCK, ""),
        at="id: audit-log",
        field="releases[0].changes[0].expected",
        words=("change 'audit-log' in release 1.1.0 has no `expected`",),
    ),
    Bad(
        "change-without-rollback",
        BASE.replace(ROLLBACK_BLOCK, ""),
        at="id: audit-log",
        field="releases[0].changes[0].rollback",
        words=("change 'audit-log' in release 1.1.0 has no `rollback`", "roll it back"),
    ),
    Bad(
        "expected-says-nothing",
        BASE.replace(EXPECTED_BLOCK, "        expected: {}\n"),
        at="{}",
        words=("summary or checks", CHANGE),
    ),
    Bad(
        "expected-is-null",
        BASE.replace(EXPECTED_BLOCK, "        expected:\n"),
        at="expected:",
        offset=9,
        words=("expected a mapping", "summary", "nothing (null)", CHANGE),
    ),
    # --- blank text where words are required: the rollback note would say nothing -----------
    Bad(
        "change-owner-blank",
        edit("owner: alice", 'owner: "   "'),
        at='"   "',
        field="releases[0].changes[0].owner",
        words=("expected some text", "got the text '   '", "only whitespace", CHANGE, "owns"),
    ),
    Bad(
        "change-owner-tab-and-newline",
        edit("owner: alice", r'owner: "\t\n"'),
        at='"\\t',
        field="releases[0].changes[0].owner",
        words=("expected some text", "only whitespace", CHANGE),
    ),
    Bad(
        "change-owner-no-break-space",
        edit("owner: alice", r'owner: "\u00a0"'),
        at='"\\u00a0"',
        field="releases[0].changes[0].owner",
        words=("expected some text", "only whitespace", CHANGE),
    ),
    Bad(
        "change-owner-zero-width-space",
        edit("owner: alice", r'owner: "\u200b"'),
        at='"\\u200b"',
        field="releases[0].changes[0].owner",
        words=("expected some text", "'\\u200b'", "invisible characters", CHANGE, "owns"),
    ),
    Bad(
        "runbook-owner-byte-order-mark-and-spaces",
        edit("owner: team-storefront", r'owner: " \ufeff\u2060 "'),
        at='" \\ufeff',
        field="owner",
        words=("expected some text", "invisible characters", "team or person accountable"),
    ),
    Bad(
        "change-owner-empty",
        edit("owner: alice", "owner: ''"),
        at="''",
        field="releases[0].changes[0].owner",
        words=("expected some text", "got the text ''", CHANGE, "owns this change"),
    ),
    Bad(
        "runbook-owner-blank",
        edit("owner: team-storefront", "owner: ' '"),
        at="' '",
        field="owner",
        words=("expected some text", "only whitespace", "team or person accountable"),
    ),
    Bad(
        "escalation-blank",
        edit('escalation: "#storefront-oncall"', 'escalation: "  "'),
        at='"  "',
        field="escalation",
        words=("expected some text", "only whitespace", "where to page"),
    ),
    Bad(
        "change-title-blank",
        edit("title: Record who changed an order in the admin area", "title: '  '"),
        at="'  '",
        field="releases[0].changes[0].title",
        words=("expected some text", "only whitespace", CHANGE),
    ),
    Bad(
        "expected-summary-blank",
        edit(
            "summary: Admin order pages show the audit trail and stay under 300 ms at p95.",
            "summary: '  '",
        ),
        at="'  '",
        field="releases[0].changes[0].expected.summary",
        words=("expected some text", "only whitespace", CHANGE, "leave `summary` out"),
    ),
    Bad(
        "expected-shorthand-blank",
        BASE.replace(EXPECTED_BLOCK, '        expected: "   "\n'),
        at='"   "',
        field="releases[0].changes[0].expected",
        words=("expected some text", "only whitespace", CHANGE),
    ),
    Bad(
        "rollback-summary-blank",
        edit(
            "summary: Deploy 1.0.0 again; the audit table stays and 1.0.0 ignores it.",
            "summary: ' '",
        ),
        at="' '",
        field="releases[0].changes[0].rollback.summary",
        words=("expected some text", "only whitespace", CHANGE, "undone"),
    ),
    Bad(
        "log-look-for-blank",
        edit("look_for: lines whose level is error; follow their request_id", "look_for: ' '"),
        at="' '",
        field="logs[0].look_for",
        words=("expected some text", "only whitespace"),
    ),
    Bad(
        "release-without-changes",
        BASE[: BASE.index("    changes:")] + "    changes: []\n",
        at="[]",
        words=("at least one change", "empty list", "release 1.1.0"),
    ),
    # --- YAML tags: refused, never constructed ------------------------------------------------
    Bad(
        "tag-python-object",
        edit("owner: alice", 'owner: !!python/object/apply:os.system ["touch PWNED"]'),
        at="!!python",
        words=("tag", "!!python/object/apply:os.system", "not allowed"),
    ),
    Bad(
        "tag-binary",
        edit("owner: alice", "owner: !!binary aGVsbG8="),
        at="!!binary",
        words=("!!binary", "not allowed"),
    ),
    Bad(
        "tag-custom",
        edit("owner: alice", "owner: !custom alice"),
        at="!custom",
        words=("!custom", "not allowed"),
    ),
    Bad(
        "tag-str",
        edit("owner: alice", "owner: !!str alice"),
        at="!!str",
        words=("!!str", "not allowed"),
    ),
    Bad(
        "tag-on-a-mapping",
        edit("  healthy:\n", "  healthy: !!map\n"),
        at="!!map",
        words=("!!map", "not allowed"),
    ),
    Bad(
        "tag-on-a-key",
        edit("owner: team-storefront", "!!str owner: team-storefront"),
        at="!!str",
        words=("!!str", "not allowed"),
    ),
    # --- paths that leave the project ------------------------------------------------------------
    Bad(
        "config-path-dot-dot",
        edit("config: config/staging.env", "config: ../../etc/passwd"),
        at="../../etc/passwd",
        field="environments.staging.config",
        words=("inside the project", "'../../etc/passwd'"),
    ),
    Bad(
        "config-path-absolute",
        edit("config: config/staging.env", "config: /etc/passwd"),
        at="/etc/passwd",
        field="environments.staging.config",
        words=("relative to the project root", "absolute path '/etc/passwd'"),
    ),
    Bad(
        "log-path-dot-dot",
        edit("where: var/{env}/logs/app.jsonl", "where: ../{env}/app.jsonl"),
        at="../{env}",
        field="logs[0].where",
        words=("inside the project",),
    ),
    Bad(
        "step-cwd-absolute",
        edit("steps: []", "steps: [{run: [./undo], cwd: /tmp}]"),
        at="[{run",
        column=False,
        words=("absolute path '/tmp'",),
    ),
    # --- check URLs -----------------------------------------------------------------------------
    Bad(
        "check-url-ftp",
        edit("- get: /admin/orders/1/audit", "- get: ftp://127.0.0.1/audit"),
        at="ftp://",
        field="releases[0].changes[0].expected.checks[2].get",
        words=("http or https", "'ftp'"),
    ),
    Bad(
        "check-url-file",
        edit("- get: /admin/orders/1/audit", "- get: file:///etc/passwd"),
        at="file://",
        words=("http or https", "'file'"),
    ),
    Bad(
        "check-url-with-credentials",
        edit("- get: /admin/orders/1/audit", "- get: http://admin:hunter2secret@127.0.0.1:8181/a"),
        at="http://admin",
        words=("credentials", "***"),
        absent=("hunter2secret",),
    ),
    Bad(
        "check-url-with-credentials-and-no-scheme",
        edit("- get: /admin/orders/1/audit", "- get: 'admin:hunter2secret@127.0.0.1:8181/a'"),
        at="'admin:",
        words=("expected a path starting with /", "***@127.0.0.1:8181/a"),
        absent=("hunter2secret",),
    ),
    Bad(
        "check-url-without-scheme",
        edit("- get: /admin/orders/1/audit", "- get: localhost:8181/admin/orders"),
        at="localhost:8181",
        words=("got 'localhost:8181/admin/orders'", "(/admin/orders), or http://localhost:8181/"),
    ),
    Bad(
        "environment-url-without-scheme",
        edit("url: http://127.0.0.1:8181", "url: 127.0.0.1:8181"),
        at="127.0.0.1:8181",
        field="environments.staging.url",
        words=("got '127.0.0.1:8181', which has no scheme", "write http://127.0.0.1:8181"),
    ),
    Bad(
        "environment-url-with-credentials-and-no-scheme",
        edit("url: https://orders.example.com", "url: 'admin:hunter2secret@orders.example.com'"),
        at="'admin:",
        field="environments.production.url",
        words=("***@orders.example.com",),
        absent=("hunter2secret",),
    ),
    Bad(
        "check-both-request-and-command",
        edit("  healthy:\n    get: /health\n", "  healthy:\n    get: /health\n    run: [true]\n"),
        at="get: /health",
        field="checks.healthy.get",
        words=("unknown key `get`", "never both"),
    ),
    Bad(
        "environment-url-with-credentials",
        edit(
            "url: https://orders.example.com", "url: https://admin:hunter2secret@orders.example.com"
        ),
        at="https://admin",
        field="environments.production.url",
        words=("credentials", "***"),
        absent=("hunter2secret",),
    ),
    Bad(
        "environment-url-ftp",
        edit("url: https://orders.example.com", "url: ftp://orders.example.com"),
        at="ftp://",
        words=("http or https", "'ftp'"),
    ),
    Bad(
        "check-host-not-allowed",
        edit("- get: /admin/orders/1/audit", "- get: http://evil.example.net/audit"),
        at="http://evil",
        words=("host 'evil.example.net'", "allow_hosts"),
    ),
    Bad(
        "check-path-without-slash",
        edit("- get: /admin/orders/1/audit", "- get: admin/orders"),
        at="get: admin/orders",
        offset=5,
        words=("path starting with /", "/admin/orders"),
    ),
    Bad(
        "allow-hosts-with-port",
        edit("allow_hosts: [127.0.0.1, localhost]", "allow_hosts: [127.0.0.1:8181, localhost]"),
        at="[127.0.0.1:8181",
        offset=1,
        field="environments.staging.allow_hosts[0]",
        words=("host name", "without its port"),
    ),
    Bad(
        "allow-hosts-with-a-wildcard",
        edit("allow_hosts: [127.0.0.1, localhost]", "allow_hosts: [127.0.0.1, '*']"),
        at="'*'",
        field="environments.staging.allow_hosts[1]",
        words=("host name", "got '*'", "no wildcards"),
    ),
    # --- rules across the runbook ----------------------------------------------------------------
    Bad(
        "unknown-named-check",
        edit("            - admin-responsive", "            - admin-responsve"),
        at="admin-responsve",
        field="releases[0].changes[0].expected.checks[1]",
        words=("name of a check", "'admin-responsve'", "did you mean `admin-responsive`?"),
    ),
    Bad(
        "duplicate-change-id",
        edit(
            "    changes:\n",
            "    changes:\n      - {id: audit-log, title: t, owner: o, expected: e, rollback: r}\n",
        ),
        at="id: audit-log\n",
        offset=4,
        field="releases[0].changes[1].id",
        words=("'audit-log'", "twice", "release 1.1.0"),
    ),
    Bad(
        "duplicate-version",
        BASE + "  - version: 1.1.0\n    changes: [{id: x, title: t, owner: o, expected: e, "
        "rollback: r}]\n",
        at="1.1.0\n    changes: [",
        field="releases[1].version",
        words=("1.1.0", "twice"),
    ),
    Bad(
        "no-staging",
        edit("  staging:", "  qa:"),
        at="qa:",
        field="environments",
        words=("`staging`", "qa, production"),
    ),
    Bad(
        "bad-regular-expression",
        edit("'^(sqlite|postgresql)://'", "'^(sqlite|postgresql://'"),
        at="{pattern",
        field="config.rules.DATABASE_URL",
        words=("regular expression", "'^(sqlite|postgresql://'"),
    ),
    Bad(
        "config-file-of-an-unread-kind",
        edit("config: config/staging.env", "config: config/staging.ini"),
        at="config/staging.ini",
        field="environments.staging.config",
        words=("expected a config file ending in .env", "'config/staging.ini'"),
    ),
    Bad(
        "regular-expression-repeat-too-large",
        edit("'^(sqlite|postgresql)://'", "'a{99999999999}'"),
        at="{pattern",
        field="config.rules.DATABASE_URL",
        words=("regular expression", "'a{99999999999}'", "too large"),
    ),
    Bad(
        "regular-expression-nested-too-deeply",
        edit("'^(sqlite|postgresql)://'", "'" + "(" * 1200 + ")" * 1200 + "'"),
        at="{pattern",
        field="config.rules.DATABASE_URL",
        words=("regular expression", "nested too deeply"),
    ),
    Bad(
        "config-one-of-empty",
        edit("{one_of: [debug, info, warning, error]}", "{one_of: []}"),
        at="[]}",
        field="config.rules.LOG_LEVEL.one_of",
        words=("at least one allowed value", "empty list"),
    ),
    Bad(
        "config-rule-checks-nothing",
        edit("{one_of: [debug, info, warning, error]}", "{}"),
        at="{}",
        field="config.rules.LOG_LEVEL",
        words=("a rule that checks something", "got none"),
    ),
    Bad(
        "config-rule-only-turned-off",
        edit("{one_of: [debug, info, warning, error]}", "{boolean: false}"),
        at="{boolean",
        field="config.rules.LOG_LEVEL",
        words=("a rule that checks something", "got none"),
    ),
    Bad(
        "same-keys-as-no-environment",
        edit("same_keys_as: production", "same_keys_as: prod"),
        at="prod ",
        field="config.same_keys_as",
        words=("name of an environment", "'prod'", "did you mean `production`?"),
    ),
    Bad(
        "placeholder-in-shell-command",
        edit("  unit: [pytest, -q]", "  unit: {run: 'pytest -q --env {env}', shell: true}"),
        at="'pytest",
        field="gates.unit.run",
        words=("{env}", "shell", "DRILLBOOK_ENV"),
    ),
    Bad(
        "placeholder-misspelt-in-deploy",
        edit('--version, "{version}"', '--version, "{verison}"'),
        at='"{verison}"',
        field="deploy.run[5]",
        words=("unknown placeholder {verison}", "argument 6", "did you mean {version}?"),
    ),
    Bad(
        "placeholder-in-capitals",
        edit('--env, "{env}"', '--env, "{ENV}"'),
        at='"{ENV}"',
        field="deploy.run[3]",
        words=("unknown placeholder {ENV}", "stay the text {ENV}", "did you mean {env}?"),
    ),
    Bad(
        "placeholder-with-a-dollar-outside-a-shell",
        edit('--version, "{version}"', '--version, "${version}"'),
        at='"${version}"',
        field="deploy.run[5]",
        words=("got ${version}", "no shell", 'write "{version}"'),
    ),
    Bad(
        "placeholder-misspelt-behind-an-escape",
        edit('--version, "{version}"', '--version, "\\u007Bverison}"'),
        at='"\\u007B',
        field="deploy.run[5]",
        words=("unknown placeholder {verison}", "did you mean {version}?"),
    ),
    Bad(
        "placeholder-misspelt-in-an-expected-answer",
        edit("expect: {json: {version: 1.0.0}}", 'expect: {json: {version: "{previos}"}}'),
        at='"{previos}"',
        field="releases[0].changes[0].rollback.checks[1].expect.json.version",
        words=("unknown placeholder {previos}", "expected answer", "did you mean {previous}?"),
    ),
    Bad(
        "placeholder-misspelt-in-a-check-url",
        edit("    get: /health\n", "    get: /health?env={evn}\n"),
        at="/health?env",
        field="checks.healthy.get",
        words=("unknown placeholder {evn}", "check's URL", "did you mean {env}?"),
    ),
    Bad(
        "body-on-a-get",
        edit(CHECK_AUDIT, CHECK_AUDIT.replace("\n", "\n              body: x\n", 1)),
        at="x\n",
        words=("body only with post", "get"),
    ),
    Bad(
        "header-value-not-latin-1",
        audit_check_with("headers: {X-Name: 名前}"),
        at="名前",
        field="releases[0].changes[0].expected.checks[2].headers.X-Name",
        words=("header value in Latin-1", "'名前'", "percent-encode"),
    ),
    Bad(
        "header-value-on-two-lines",
        audit_check_with('headers: {X-A: "a\\nb"}'),
        at='"a',
        field="releases[0].changes[0].expected.checks[2].headers.X-A",
        words=("header value on one line", "line break"),
    ),
    Bad(
        "header-name-with-a-space",
        audit_check_with('headers: {"X A": "1"}'),
        at='{"X A"',
        field="releases[0].changes[0].expected.checks[2].headers",
        words=("header name", "'X A'", "no spaces"),
    ),
    Bad(
        "body-expected-of-a-head",
        edit(
            CHECK_AUDIT,
            "            - head: /admin\n" + "              expect: {body_contains: alive}\n",
        ),
        at="alive}",
        field="releases[0].changes[0].expected.checks[2].expect.body_contains",
        words=("no body expectation on a head check", "got body_contains", "use get"),
    ),
    Bad(
        "two-methods",
        edit(CHECK_AUDIT, CHECK_AUDIT.replace("\n", "\n              post: /x\n", 1)),
        at="get: /admin/orders/1",
        words=("exactly one of get, head or post", "get and post"),
    ),
    Bad(
        "merge-of-a-number",
        edit("  admin-responsive:\n", "  admin-responsive:\n    <<: 5\n"),
        at="5\n",
        words=("<<", "merges a mapping"),
    ),
    # --- bytes -----------------------------------------------------------------------------------
    Bad(
        "nul-byte",
        edit("owner: alice", "owner: al\x00ice"),
        at="\x00",
        words=("control character", "U+0000", "byte offset"),
    ),
]


def _write(tmp_path: Path, data: str | bytes, name: str = "bad.yaml") -> Path:
    folder = tmp_path / "runbooks"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _problems(tmp_path: Path, data: str | bytes) -> list[Problem]:
    path = _write(tmp_path, data)
    with pytest.raises(InvalidInput) as info:
        load_runbook(path, root=tmp_path)
    assert info.value.exit_code == EXIT_INVALID
    assert info.value.problems, "InvalidInput without problems"
    for problem in info.value.problems:
        assert problem.file.endswith("bad.yaml"), problem.file
        assert problem.line >= 1
        assert problem.column >= 1
    return info.value.problems


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 50
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_runbook(tmp_path: Path, case: Bad) -> None:
    problems = _problems(tmp_path, case.text)
    line, column = case.position()
    shown = "\n".join(str(p) for p in problems)
    here = [p for p in problems if p.line == line and (not case.column or p.column == column)]
    assert here, f"no problem at {line}:{column}; got:\n{shown}"
    problem = here[0]
    text = str(problem).lower()
    for word in case.words:
        assert word.lower() in text, f"{word!r} missing from: {problem}"
    if case.field is not None:
        assert problem.field == case.field, problem
    assert str(problem).startswith(f"{problem.file}:{line}:{problem.column}: ")
    for secret in case.absent:
        assert secret not in shown
        assert secret not in str(InvalidInput(problems))


def test_several_problems_in_one_file_are_all_reported(tmp_path: Path) -> None:
    text = edit("owner: alice", "owner: 42")
    text = edit("timeout: 60s", "timeout: 60", text)
    text = edit("        rollback:  ", "        rollbak:  ", text)
    text = edit("retry_safe: true", "retry_safe: yes", text)
    problems = _problems(tmp_path, text)
    fields = [p.field for p in problems]
    assert "deploy.timeout" in fields
    assert "releases[0].changes[0].owner" in fields
    assert "releases[0].changes[0].rollbak" in fields
    assert "releases[0].changes[0].rollback" in fields  # missing, with a hint at the typo
    assert [p.line for p in problems] == sorted(p.line for p in problems)


def test_a_missing_key_and_its_typo_point_at_each_other(tmp_path: Path) -> None:
    problems = _problems(tmp_path, edit("        rollback:  ", "        rollbak:  "))
    missing = next(p for p in problems if p.field.endswith(".rollback"))
    assert "is `rollbak` meant to be `rollback`?" in str(missing)


def test_yaml_and_model_problems_do_not_mask_each_other_silently(tmp_path: Path) -> None:
    # A YAML problem (duplicate key) stops before the model: it is reported alone, positioned.
    text = edit("        owner: alice", "        owner: alice\n        owner: bob")
    text = edit("timeout: 60s", "timeout: 60", text)
    problems = _problems(tmp_path, text)
    assert any("duplicate key" in p.message for p in problems)


# --- limits: bombs, depth, size --------------------------------------------------------------


def _measure(tmp_path: Path, data: str | bytes) -> tuple[list[Problem], float, int]:
    path = _write(tmp_path, data)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(InvalidInput) as info:
            load_runbook(path, root=tmp_path)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return info.value.problems, elapsed, peak


BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
)


def test_billion_laughs_is_refused_fast_in_bounded_memory(tmp_path: Path) -> None:
    problems, elapsed, peak = _measure(tmp_path, BILLION_LAUGHS)
    assert elapsed < 1.0
    assert peak < 50 * 1024 * 1024
    assert any("alias bomb" in p.message for p in problems)
    assert problems[0].line in (6, 7, 8, 9)


def test_billion_laughs_inside_a_valid_runbook(tmp_path: Path) -> None:
    bomb = "".join("  " + line for line in BILLION_LAUGHS.splitlines(keepends=True))
    text = BASE.replace(
        "config:                            # rules", "x:\n" + bomb + "config: #", 1
    )
    problems, elapsed, peak = _measure(tmp_path, text)
    assert elapsed < 1.0
    assert peak < 50 * 1024 * 1024
    assert any("alias bomb" in p.message for p in problems)


def test_many_small_aliases_are_counted_too(tmp_path: Path) -> None:
    # Wide rather than deep: 2,000 aliases each expanding to 200 values.
    text = "a: &a [" + ",".join(["x"] * 199) + "]\nb: [" + ",".join(["*a"] * 2000) + "]\n"
    problems, elapsed, peak = _measure(tmp_path, text)
    assert elapsed < 1.0
    assert peak < 50 * 1024 * 1024
    assert any("200,000" in p.message for p in problems)


def _amplified(uses: int) -> str:
    """The audit's runbook: one 900,000-character text used `uses` times as gate arguments."""
    text = edit(
        "description: Orders API with an admin area used by support staff.",
        "description: &d " + "x" * 900_000,
    )
    return edit("lint: [ruff, check, .]", "lint: [touch, lint-ran" + ", *d" * uses + "]", text)


def test_text_amplified_by_aliases_is_refused_at_the_alias(tmp_path: Path) -> None:
    # A 913 KB file that stands for 2.7 GB of argv: `check` accepted it, and `plan` then ran
    # out of memory building the gate's arguments. Refused at the first alias over the limit.
    text = _amplified(3000)
    problems, _, peak = _measure(tmp_path, text)
    assert len(problems) == 1
    problem = problems[0]
    limit = f"{yamlsafe.MAX_CHARS:,}"
    assert f"aliases expand this runbook to more than {limit} characters of text" in str(problem)
    assert "alias bomb" in problem.message
    assert "repeat less" in (problem.hint or "")
    # The description's 900,000 characters, then 900,000 more per alias: the alias that takes
    # the total over the limit is number MAX_CHARS // 900,000 (the 9th: 10 x 900,000 > 8 MiB).
    alias = text.index("lint: [")
    for _ in range(yamlsafe.MAX_CHARS // 900_000):
        alias = text.index("*d", alias + 1)
    line = text.count("\n", 0, alias) + 1
    column = alias - (text.rfind("\n", 0, alias) + 1) + 1
    assert (problem.line, problem.column) == (line, column)
    assert str(problem).startswith(f"{problem.file}:{line}:{column}: ")
    assert peak < 50 * 1024 * 1024


def test_text_under_the_alias_limit_still_loads(tmp_path: Path) -> None:
    # One alias fewer: 900,000 characters and 8 aliases of them, 8.1 million, under 8 MiB.
    uses = yamlsafe.MAX_CHARS // 900_000 - 1
    loaded = load_runbook(_write(tmp_path, _amplified(uses)), root=tmp_path)
    assert loaded.runbook.gates.lint is not None
    assert len(loaded.runbook.gates.lint.run) == 2 + uses


def test_anchors_and_aliases_in_a_runbook_still_work(tmp_path: Path) -> None:
    text = edit("owner: team-storefront", "owner: &team team-storefront")
    text = edit("owner: alice", "owner: *team", text)
    text = edit("  healthy:\n", "  healthy: &healthy\n", text)
    text = edit("  admin-responsive:\n", "  also-healthy: *healthy\n  admin-responsive:\n", text)
    text = edit("  lint: [ruff, check, .]", "  lint: &lint [ruff, check, .]", text)
    text = edit("steps: []", "steps: [*lint, *lint]", text)
    runbook = load_runbook(_write(tmp_path, text), root=tmp_path).runbook
    change = runbook.releases[0].changes[0]
    assert change.owner == runbook.owner == "team-storefront"
    assert runbook.checks["also-healthy"] == runbook.checks["healthy"]
    assert [step.run for step in change.rollback.steps] == [["ruff", "check", "."]] * 2


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 100_000 + "]" * 100_000 + "\n",
        "a: " + "{b: " * 50_000 + "c" + "}" * 50_000 + "\n",
        "".join(" " * i + "k:\n" for i in range(0, 2 * 600, 2)),
        "- " * 10_000 + "x\n",
    ],
    ids=["flow-lists", "flow-mappings", "block-mappings", "block-lists"],
)
def test_very_deep_nesting_is_refused_fast(tmp_path: Path, text: str) -> None:
    problems, elapsed, peak = _measure(tmp_path, text)
    assert elapsed < 1.0
    assert peak < 50 * 1024 * 1024
    assert any("nesting deeper than" in p.message for p in problems), problems


def test_a_file_over_the_size_cap_is_refused_before_parsing(tmp_path: Path) -> None:
    text = BASE + "# " + "x" * (yamlsafe.MAX_BYTES + 10) + "\n"
    problems, elapsed, peak = _measure(tmp_path, text)
    assert elapsed < 1.0
    assert peak < 50 * 1024 * 1024
    assert len(problems) == 1
    assert "over the 1,048,576-byte limit" in problems[0].message
    assert (problems[0].line, problems[0].column) == (1, 1)


def test_non_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    raw = BASE.encode("utf-8")
    offset = raw.index(b"alice")
    raw = raw[:offset] + b"al\xe9ce" + raw[offset + 5 :]
    problems = _problems(tmp_path, raw)
    assert len(problems) == 1
    problem = problems[0]
    assert f"byte offset {offset + 2}" in problem.message
    assert "0xe9" in problem.message
    assert "UTF-8" in problem.message
    line = BASE[: BASE.index("owner: alice")].count("\n") + 1
    assert problem.line == line
    assert problem.column == len("        owner: al") + 1


def test_latin1_file_is_refused_with_the_first_bad_byte(tmp_path: Path) -> None:
    raw = "drillbook: 1\nservice: café\n".encode("latin-1")
    problems = _problems(tmp_path, raw)
    assert "byte offset 25" in problems[0].message
    assert (problems[0].line, problems[0].column) == (2, 13)


def test_utf16_file_is_refused_not_misread(tmp_path: Path) -> None:
    problems = _problems(tmp_path, BASE.encode("utf-16"))
    assert "UTF-8" in problems[0].message


# --- paths through symlinks ----------------------------------------------------------------


def test_a_symlink_out_of_the_project_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "staging.env").write_text("SECRET_KEY=x\n")
    (project / "runbooks").mkdir(parents=True)
    (project / "config").symlink_to(outside, target_is_directory=True)
    path = project / "runbooks" / "bad.yaml"
    path.write_text(BASE)
    with pytest.raises(InvalidInput) as info:
        load_runbook(path)
    problems = info.value.problems
    config = next(p for p in problems if p.field == "environments.staging.config")
    assert config.line == BASE[: BASE.index("config: config/staging.env")].count("\n") + 1
    assert "outside the project" in config.message
    assert str(outside.resolve()) in config.message
    assert "symlink" in (config.hint or "")


def test_a_symlink_inside_the_project_is_fine(tmp_path: Path) -> None:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "real-config").mkdir()
    (tmp_path / "config").symlink_to(tmp_path / "real-config", target_is_directory=True)
    path = tmp_path / "runbooks" / "good.yaml"
    path.write_text(BASE)
    assert load_runbook(path).runbook.service == "demo-service"


def test_a_runbook_that_is_itself_a_symlink_loop_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "runbooks").mkdir()
    loop = tmp_path / "runbooks" / "loop.yaml"
    loop.symlink_to(loop)
    with pytest.raises(InvalidInput) as info:
        load_runbook(loop)
    assert "cannot read the file" in info.value.problems[0].message


# --- positions stay right ------------------------------------------------------------------


def test_windows_line_endings_keep_lines_right(tmp_path: Path) -> None:
    text = edit("owner: alice", "owner: 42").replace("\n", "\r\n")
    problems = _problems(tmp_path, text)
    expected = BASE[: BASE.index("owner: alice")].count("\n") + 1
    assert [(p.line, p.column) for p in problems] == [(expected, 16)]


def test_a_bom_keeps_lines_and_columns_right(tmp_path: Path) -> None:
    text = "\ufeff" + edit("owner: alice", "owner: 42")
    problems = _problems(tmp_path, text)
    expected = BASE[: BASE.index("owner: alice")].count("\n") + 1
    assert [(p.line, p.column) for p in problems] == [(expected, 16)]


def test_a_very_long_line_reports_the_right_column(tmp_path: Path) -> None:
    long_text = "x" * 200_000
    text = edit(
        "description: Orders API with an admin area used by support staff.",
        f"description: {long_text}\ntimeout: 5",
    )
    problems = _problems(tmp_path, text)
    assert any(p.field == "timeout" for p in problems)  # unknown key, on the next line
    long_value = _problems(tmp_path, edit("owner: alice", f"owner: [{long_text}]"))
    assert long_value[0].column == 16
    assert len(str(long_value[0])) < 500, "a long value is shortened in the message"


# --- robustness: every damaged variant is refused cleanly, never with another exception --------


def _damaged_variants() -> list[str]:
    lines = BASE.splitlines(keepends=True)
    variants = ["".join(lines[:i] + lines[i + 1 :]) for i in range(len(lines))]
    variants += [BASE[:cut] for cut in range(0, len(BASE), 41)]
    variants += ["".join([*lines[:i], " " + lines[i], *lines[i + 1 :]]) for i in range(len(lines))]
    return variants


def test_every_damaged_variant_is_accepted_or_refused_cleanly(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    refused = 0
    for text in _damaged_variants():
        path.write_text(text, encoding="utf-8")
        try:
            load_runbook(path, root=tmp_path)
        except InvalidInput as exc:
            refused += 1
            for problem in exc.problems:
                assert problem.line >= 1
                assert problem.column >= 1
                assert problem.message
                assert "Traceback" not in str(problem)
    assert refused > 100


def test_template_text_is_only_text_even_when_the_runbook_is_bad(tmp_path: Path) -> None:
    text = edit("owner: alice", "owner: '{{ 7*7 }}'\n        oops: {{ 7*7 }}")
    problems = _problems(tmp_path, text)
    # Without the file's path: pytest's temporary folder may well hold a 49 of its own.
    shown = "\n".join(str(p).removeprefix(p.file) for p in problems)
    assert problems
    assert "49" not in shown


def test_problems_never_show_url_passwords(tmp_path: Path) -> None:
    # The message names the URL masked; the password never appears, also not URL-encoded.
    text = edit(
        "url: https://orders.example.com", "url: https://ops:p%40ss-w0rd-x@orders.example.com"
    )
    problems = _problems(tmp_path, text)
    shown = "\n".join(str(p) for p in problems)
    assert "p%40ss-w0rd-x" not in shown
    assert "p@ss-w0rd-x" not in shown


@pytest.mark.parametrize(
    ("name", "guess"),
    [
        ("verison", "version"),
        ("vesion", "version"),
        ("Version", "version"),
        ("SERVICE", "service"),
        ("prev", "previous"),
        ("previos", "previous"),
        ("envs", "env"),
        ("urll", "url"),
        ("servce", "service"),
        ("version", None),
        ("id", None),
        ("name", None),
        ("user", None),
        ("path", None),
        ("date", None),
        ("a", None),
    ],
)
def test_a_placeholder_typo_is_told_from_a_brace_of_the_command(
    name: str, guess: str | None
) -> None:
    from drillbook.placeholders import meant

    assert meant(name) == guess
