"""Good runbooks, written from SPEC.md alone, are accepted and read as their author meant."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from _spies import runbook_loads

from drillbook import yamlsafe
from drillbook.crossfield import mask_url
from drillbook.errors import InvalidInput, UsageError
from drillbook.model import HttpCheck, Runbook, RunCheck
from drillbook.runbook import (
    LoadedRunbook,
    find_runbook_files,
    load_project_runbook,
    load_runbook,
    load_runbook_bytes,
    project_root_for,
)

GOOD = Path(__file__).resolve().parents[1] / "fixtures" / "runbooks" / "good"
GOOD_FILES = sorted(GOOD.glob("*.yaml"))
SPEC = GOOD / "spec-outline.yaml"


def _load(name: str) -> Runbook:
    return load_runbook(GOOD / name).runbook


def test_there_is_a_variety_of_good_runbooks() -> None:
    assert len(GOOD_FILES) >= 12


@pytest.mark.parametrize("path", GOOD_FILES, ids=[p.stem for p in GOOD_FILES])
def test_good_runbook_is_accepted(path: Path) -> None:
    loaded = load_runbook(path)
    assert isinstance(loaded, LoadedRunbook)
    assert loaded.runbook.drillbook == 1
    assert "staging" in loaded.runbook.environments
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.path == path.absolute()


@pytest.mark.parametrize("path", GOOD_FILES, ids=[p.stem for p in GOOD_FILES])
def test_fast_and_positioned_readers_agree(path: Path) -> None:
    text = yamlsafe.decode(path.read_bytes())
    try:
        fast = yamlsafe.parse_data(text)
    except yamlsafe.NeedsFullParse:
        assert "<<:" in text  # merge keys are read by the positioned reader only
        fast = yamlsafe.load(text)
    assert fast == yamlsafe.parse(text).data


@pytest.mark.parametrize("path", GOOD_FILES, ids=[p.stem for p in GOOD_FILES])
def test_good_runbook_survives_crlf_and_bom(path: Path, tmp_path: Path) -> None:
    raw = path.read_bytes()
    variant = tmp_path / "runbooks" / path.name
    variant.parent.mkdir()
    variant.write_bytes(b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n"))
    original = load_runbook(path, root=tmp_path).runbook
    assert load_runbook(variant).runbook == original


def test_the_spec_outline_reads_as_written() -> None:
    rb = _load("spec-outline.yaml")
    assert rb.service == "demo-service"
    assert rb.owner == "team-storefront"
    assert rb.escalation == "#storefront-oncall"
    assert rb.environments["staging"].allow_hosts == ["127.0.0.1", "localhost"]
    assert rb.environments["production"].allow_hosts is None
    assert rb.config is not None
    assert rb.config.same_keys_as == "production"
    assert rb.config.rules["ADMIN_PAGE_SIZE"].integer is not None
    assert rb.config.rules["ADMIN_PAGE_SIZE"].integer.max == 500
    assert rb.gates.lint is not None
    assert rb.gates.lint.run == ["ruff", "check", "."]
    assert rb.deploy is not None
    assert rb.deploy.run == ["python", "deploy.py", "--env", "{env}", "--version", "{version}"]
    assert rb.deploy.timeout == 60.0
    healthy = rb.checks["healthy"]
    assert isinstance(healthy, HttpCheck)
    assert healthy.retry.attempts == 20
    assert healthy.retry.interval == 0.25
    assert healthy.expect.json_ == {"status": "ok"}
    assert rb.checks["admin-responsive"].expect.p95 == 0.3
    release = rb.release("1.1.0")
    assert release is not None
    change = release.changes[0]
    assert (change.id, change.owner) == ("audit-log", "alice")
    assert change.expected.checks[:2] == ["healthy", "admin-responsive"]
    assert change.rollback.retry_safe is True
    assert change.rollback.steps == []
    version_check = rb.resolve(change.rollback.checks[1])
    assert isinstance(version_check, HttpCheck)
    assert version_check.expect.json_ == {"version": "1.0.0"}
    assert rb.tag_name("1.1.0") == "v1.1.0"


def test_minimal_runbook_gets_the_defaults() -> None:
    rb = _load("minimal.yaml")
    assert rb.releases == []
    assert rb.checks == {}
    assert rb.gates.lint is not None
    assert rb.gates.lint.run == ["ruff", "check", "."]
    assert rb.gates.unit is not None
    assert rb.gates.unit.run == ["pytest", "-q"]
    assert rb.tag == "v{version}"
    assert rb.deploy is None


def test_every_kind_of_check() -> None:
    rb = _load("check-kinds.yaml")
    assert rb.checks["ready"].method == "HEAD"
    assert rb.checks["ready"].expect.statuses() == [200, 204]
    order = rb.checks["create-order"]
    assert isinstance(order, HttpCheck)
    assert order.method == "POST"
    assert order.body == {"item": "widget", "quantity": 2, "gift": False}
    assert order.expect.json_ is not None
    assert order.expect.json_["order.items.0.name"] == "widget"
    assert order.expect.header == {"Content-Type": "application/json"}
    assert order.expect.max_time == 1.5
    assert rb.checks["echo-text"].expect.header == {"Content-Type": "text/plain"}
    fast = rb.checks["fast-admin"]
    assert isinstance(fast, HttpCheck)
    assert fast.expect.percentiles() == {"p50": 0.1, "p95": 0.3, "p99": 1.0}
    assert fast.samples == 30
    run = rb.checks["migrations-applied"]
    assert isinstance(run, RunCheck)
    assert run.run[-1] == "{env}"
    shell = rb.checks["disk-space"]
    assert isinstance(shell, RunCheck)
    assert shell.shell
    assert shell.run == "df -h . | tail -1"
    assert rb.checks["url-placeholder"].target == "/health"
    inline = rb.releases[0].changes[0].expected.checks
    kinds = [type(c).__name__ if not isinstance(c, str) else "named" for c in inline]
    assert kinds.count("named") == 9
    assert kinds.count("HttpCheck") == 3
    assert kinds.count("RunCheck") == 2


def test_anchors_aliases_and_merge_keys() -> None:
    rb = _load("anchors.yaml")
    assert rb.environments["qa"].allow_hosts == ["127.0.0.1", "localhost"]
    slow = rb.checks["healthy-slow"]
    assert isinstance(slow, HttpCheck)
    assert (slow.get, slow.timeout) == ("/health", 10.0)
    assert rb.checks["healthy"].timeout == 2.0
    first, second = rb.releases[0].changes
    assert second.owner == "dana"
    assert second.expected == first.expected
    assert second.rollback.summary == first.rollback.summary
    assert (first.rollback.retry_safe, second.rollback.retry_safe) == (True, False)


def test_flow_style_json_is_yaml_too() -> None:
    rb = _load("flow-style.yaml")
    assert rb.service == "json-style"
    assert rb.releases[0].changes[0].rollback.retry_safe is True


def test_numbers_where_text_is_wanted_keep_the_text_written() -> None:
    rb = _load("yaml12-scalars.yaml")
    assert rb.deploy is not None
    assert rb.deploy.run == [
        "./deploy",
        "--feature",
        "off",
        "--verbose",
        "yes",
        "--mode",
        "0755",
        "--ratio",
        "1.10",
        "--on",
        "on",
    ]
    assert rb.config is not None
    assert rb.config.rules["FEATURE_X"].one_of == ["on", "off"]
    assert rb.config.rules["ANSWER"].one_of == ["yes", "no", "maybe"]
    assert rb.config.rules["MODE"].one_of == ["true", "false"]
    json = rb.checks["flag-off"].expect.json_
    assert json == {"feature_x": "off", "enabled": False, "count": 0, "ratio": 1.5, "nothing": None}
    env = _load("environments.yaml")
    assert env.deploy is not None
    assert env.deploy.env == {"WORKERS": "4", "DEBUG": "false", "REGION": "eu-1"}
    assert env.config is not None
    assert env.config.rules["SHARDS"].one_of == ["1", "2", "4", "8"]


def test_environments_logs_and_config_rules() -> None:
    rb = _load("environments.yaml")
    assert list(rb.environments) == ["staging", "canary", "production"]
    assert rb.tag_name("2.0.0") == "release-2.0.0"
    assert rb.config is not None
    assert rb.config.rules["RETRIES"].integer is not None
    assert rb.config.rules["DEBUG"].boolean is True
    assert [log.where for log in rb.logs][1].startswith("https://grafana.example.com/")
    assert rb.releases == []
    assert rb.description is not None
    assert rb.description.startswith("Card payments for the shop. Folded text over")


def test_versions_quoted_and_unquoted() -> None:
    rb = _load("versions.yaml")
    assert [r.version for r in rb.releases] == [
        "1.1.0",
        "1.2.0",
        "2.0.0-rc.1",
        "2.0.0+build.7",
        "10.20.30",
    ]


def test_durations_with_units() -> None:
    rb = _load("durations.yaml")
    timeouts = {name: check.timeout for name, check in rb.checks.items()}
    assert timeouts == {
        "quick": 0.25,
        "seconds": 2.0,
        "minutes": 60.0,
        "mixed": 90.0,
        "hour": 3600.0,
        "decimal": 5.0,
    }
    assert rb.checks["seconds"].retry.interval == 1.5
    assert rb.checks["mixed"].retry.interval == 0.0
    assert rb.checks["minutes"].deadline == 300.0
    assert rb.deploy is not None
    assert rb.deploy.timeout == 300.0


def test_rollback_steps_lists_and_shell() -> None:
    rb = _load("rollback-steps.yaml")
    assert rb.deploy is not None
    assert (rb.deploy.shell, rb.deploy.run) == (True, "./deploy.sh")
    assert rb.gates.unit is not None
    assert rb.gates.unit.run == ["pytest", "-q", "-x", "-n", "4"]
    assert rb.gates.unit.env == {"PYTHONHASHSEED": "0"}
    steps = rb.releases[0].changes[0].rollback.steps
    assert steps[1].run == ["python", "manage.py", "migrate", "stock", "0007"]
    assert steps[1].cwd == "backend"
    assert steps[2].shell
    assert steps[3].run == ["python", "scripts/notify.py", "--version", "{previous}"]
    check = rb.releases[0].changes[0].rollback.checks[1]
    assert isinstance(check, RunCheck)
    assert check.run[-1] == "off"


BRACES_OF_THEIR_OWN = """\
drillbook: 1
service: braces
owner: team
environments:
  staging: {url: "http://127.0.0.1:8000"}
deploy:
  run: [jq, -n, "{id: 1}", "{a}", "{name}", "{user}", "{path}", "{}", "{{version}}", "$HOME"]
  env: {FORMAT: "{date}", TEMPLATE: "{{ name }}"}
gates:
  lint: {run: "for f in {a,b}; do awk '{print $1}' $f; done; echo ${previous:-none}", shell: true}
checks:
  healthy:
    get: /health?fields={id,name}
    expect: {status: 200, json: {shape: "{id}"}}
releases:
  - version: 1.0.0
    changes:
      - id: c1
        title: Braces that are not placeholders
        owner: o
        expected: {summary: s, checks: [healthy]}
        rollback: {summary: r}
"""


def test_braces_that_are_not_placeholders_pass_as_written(tmp_path: Path) -> None:
    # Commands take braces of their own; only a name close to a placeholder is a typo, and a
    # shell's text is the shell's. `{{version}}` holds {version}, filled like any other.
    (tmp_path / "runbooks").mkdir()
    path = tmp_path / "runbooks" / "braces.yaml"
    path.write_text(BRACES_OF_THEIR_OWN, encoding="utf-8")
    rb = load_runbook(path, root=tmp_path).runbook
    assert rb.deploy is not None
    assert rb.deploy.run[2:7] == ["{id: 1}", "{a}", "{name}", "{user}", "{path}"]
    assert rb.deploy.env["FORMAT"] == "{date}"


def test_template_lookalikes_stay_text() -> None:
    rb = _load("templates-text.yaml")
    assert rb.owner == "{{ owner }}"
    assert rb.description == "Looks like a template: {{ 7*7 }} and {% if x %}y{% endif %}"
    change = rb.releases[0].changes[0]
    assert change.title == "Title with {{ 7*7 }} in it"
    assert change.expected.summary == "{{ config.items() }} stays text"
    assert change.rollback.summary is not None
    assert change.rollback.summary.startswith("Plain text may hold {{ 7*7 }} too")
    check = change.expected.checks[0]
    assert isinstance(check, HttpCheck)
    assert check.expect.body_contains == "{{ 7*7 }}"
    assert "49" not in repr(rb)


def test_document_markers_directive_and_block_scalars() -> None:
    rb = _load("comments-markers.yaml")
    change = rb.releases[0].changes[0]
    assert change.expected.summary == "The page says hello.\nOn two lines.\n"
    assert change.rollback.summary == "Deploy nothing; remove the service."


def test_unicode_text() -> None:
    rb = _load("unicode.yaml")
    assert rb.owner == "Zoë Ångström"
    assert "🚀" in (rb.description or "")


@pytest.mark.parametrize("owner", ["\u200balice", "al\u00adice", "\ufeffteam-web", "\u0301a", "🚀"])
def test_text_with_invisible_characters_beside_visible_ones_is_not_blank(
    tmp_path: Path, owner: str
) -> None:
    text = (GOOD / "unicode.yaml").read_text(encoding="utf-8")
    path = tmp_path / "runbooks" / "unicode.yaml"
    path.parent.mkdir()
    path.write_text(text.replace('owner: "Zoë Ångström"', f'owner: "{owner}"', 1), "utf-8")

    assert load_runbook(path).runbook.owner == owner


def test_expected_and_rollback_as_plain_text() -> None:
    rb = _load("shorthand.yaml")
    quick, checks_only = rb.releases[0].changes
    assert quick.expected.summary == 'The home page says "Welcome".'
    assert quick.rollback.summary == "Deploy 0.1.0 again."
    assert quick.rollback.retry_safe is False  # not said: not assumed safe
    assert checks_only.expected.summary is None
    assert checks_only.expected.checks == ["healthy"]


def test_a_very_long_single_line_is_fine_under_the_cap(tmp_path: Path) -> None:
    text = SPEC.read_text().replace(
        "description: Orders API with an admin area used by support staff.",
        "description: " + "word " * 150_000,
    )
    path = tmp_path / "runbooks" / "long.yaml"
    path.parent.mkdir()
    path.write_text(text)
    assert len((load_runbook(path).runbook.description or "").split()) == 150_000


def test_load_runbook_bytes_names_the_file_as_told(tmp_path: Path) -> None:
    raw = SPEC.read_bytes()
    loaded = load_runbook_bytes(raw, name="shown.yaml", path=tmp_path / "x.yaml", root=tmp_path)
    assert loaded.root == tmp_path.absolute()
    with pytest.raises(InvalidInput) as info:
        load_runbook_bytes(b"drillbook: 2\n", name="shown.yaml", path=tmp_path, root=tmp_path)
    assert all(p.file == "shown.yaml" for p in info.value.problems)


# --- finding runbooks and their project -----------------------------------------------------


def test_project_root_is_the_folder_holding_runbooks(tmp_path: Path) -> None:
    assert project_root_for(tmp_path / "runbooks" / "a.yaml") == tmp_path.absolute()
    assert project_root_for(tmp_path / "elsewhere" / "a.yaml") == (tmp_path / "elsewhere")


def test_display_path_is_relative_to_the_project(tmp_path: Path) -> None:
    (tmp_path / "runbooks").mkdir()
    path = tmp_path / "runbooks" / "svc.yaml"
    path.write_bytes(SPEC.read_bytes())
    assert load_runbook(path).display_path == str(Path("runbooks") / "svc.yaml")


def test_find_runbook_files(tmp_path: Path) -> None:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    for name in ("b.yaml", "a.yml", "notes.txt", "._b.yaml", ".hidden.yml"):
        (folder / name).write_text("x: 1\n")
    (folder / ".#b.yaml").symlink_to("user@host.4242")  # an editor's lock: a dangling link
    (folder / "sub").mkdir()
    (folder / "sub" / "c.yaml").write_text("x: 1\n")
    found = find_runbook_files([folder])
    assert [p.name for p in found] == ["a.yml", "b.yaml"]
    assert find_runbook_files([folder / "b.yaml"]) == [folder / "b.yaml"]
    assert find_runbook_files([folder / ".hidden.yml"]) == [folder / ".hidden.yml"]  # named
    with pytest.raises(UsageError, match="no such file or folder"):
        find_runbook_files([tmp_path / "missing"])
    # There, but never read (a pipe would block): named for what it is, not called missing.
    os.mkfifo(folder / "piped.yaml")
    assert [p.name for p in find_runbook_files([folder])] == ["a.yml", "b.yaml"]
    with pytest.raises(UsageError, match=r"piped\.yaml is a named pipe, expected a runbook file"):
        find_runbook_files([folder / "piped.yaml"])
    # A pattern the shell did not expand (`check 'runbooks/*.yaml'`).
    assert find_runbook_files([folder / "*.y*ml"]) == [folder / "a.yml", folder / "b.yaml"]
    with pytest.raises(UsageError, match=r"no runbook matches .*/runbooks/\*\.json"):
        find_runbook_files([folder / "*.json"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no runbooks in") as refused:
        find_runbook_files([tmp_path / "empty"])
    assert refused.value.hint == "run `drillbook init` to write a starter runbook"
    with pytest.raises(UsageError, match="no runbooks in") as refused:
        find_runbook_files([tmp_path])  # `check .` in the project: runbooks/ is one below
    assert refused.value.hint == f"the runbooks are in {tmp_path / 'runbooks'}/: check that folder"


def test_load_project_runbook(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no runbooks/ folder"):
        load_project_runbook(tmp_path)
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "demo-service.yaml").write_bytes(SPEC.read_bytes())
    assert load_project_runbook(tmp_path).runbook.service == "demo-service"
    (folder / "other.yaml").write_bytes((GOOD / "minimal.yaml").read_bytes())
    with pytest.raises(UsageError, match="several runbooks"):
        load_project_runbook(tmp_path)
    assert load_project_runbook(tmp_path, "demo-service").runbook.service == "demo-service"
    assert load_project_runbook(tmp_path, "tiny").runbook.service == "tiny"
    with pytest.raises(UsageError, match="no runbook for service 'nope'"):
        load_project_runbook(tmp_path, "nope")


def _services_project(tmp_path: Path) -> Path:
    """Runbooks not named after their services; beta's is broken."""
    folder = tmp_path / "runbooks"
    folder.mkdir()
    text = SPEC.read_text()
    for name, service in (("a", "alpha"), ("b", "beta"), ("c", '"gamma"  # quoted')):
        body = text.replace("service: demo-service", f"service: {service}")
        if name == "b":
            body = body.replace("owner: alice", "owner: 42")
        (folder / f"{name}.yaml").write_text(body)
    return tmp_path


def test_a_service_is_found_by_its_line_and_only_its_file_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _services_project(tmp_path)
    read = runbook_loads(monkeypatch)

    assert load_project_runbook(root, "gamma").runbook.service == "gamma"
    assert read == ["c.yaml"]


def test_a_broken_runbook_of_another_service_does_not_block_this_one(tmp_path: Path) -> None:
    root = _services_project(tmp_path)
    (root / "runbooks" / "a.yaml").write_text(
        (root / "runbooks" / "a.yaml").read_text().replace("service: alpha", "service: 'alpha'")
    )

    assert load_project_runbook(root, "alpha").runbook.service == "alpha"
    # Its own problems are the service's own, and are raised.
    with pytest.raises(InvalidInput) as caught:
        load_project_runbook(root, "beta")
    assert "b.yaml" in str(caught.value)


def test_a_missing_service_names_the_runbooks_that_could_not_be_read(tmp_path: Path) -> None:
    root = _services_project(tmp_path)

    with pytest.raises(UsageError) as caught:
        load_project_runbook(root, "delta")

    assert "no runbook for service 'delta' in runbooks/ (found: a, b, c)" in str(caught.value)
    assert "1 could not be read: runbooks/b.yaml" in str(caught.value)
    assert caught.value.hint and "drillbook check" in caught.value.hint


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@host:8080/x", "http://user:***@host:8080/x"),
        ("https://token@host/x", "https://***@host/x"),
        ("http://host/x", "http://host/x"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown
