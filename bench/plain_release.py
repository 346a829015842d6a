"""The work of a no-op release written as a plain script: the floor under `drillbook release`.

    python bench/plain_release.py PROJECT VERSION

What a team would write by hand with the same libraries, doing what `drillbook release` does
in the bench fixture and nothing more: import invoke (the task runner either runs under), read
the runbook with libyaml and validate it with drillbook's model (the format itself), look at git
(top folder and HEAD, status, identity, tags: one call each, one after the other), run the
lint, unit and deploy commands (`true`), GET the expected checks with one `requests.Session`,
make the annotated tag and look at it, render the rollback note in a jinja2 sandbox and write it
atomically, and write a journal line per event with an fsync for those that change something.

No progress lines, masking, lock, signal handling, plan, process groups or timeouts on the
commands: those are what drillbook adds, and what the ratio against this script measures. It
runs with the interpreter settings of drillbook's entry (`drillbook/__main__.py`: the garbage
collector's thresholds, and `gc.freeze` at the end), so the ratio is about the work alone.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def git(root: Path, *args: str, stdin: str | None = None) -> str:
    """One git call; fail loudly."""
    return subprocess.run(
        ["git", "-C", str(root), *args], input=stdin, capture_output=True, text=True, check=True
    ).stdout


def main(root: Path, version: str) -> int:
    """Release `version` of the runbook in `root/runbooks/`."""
    # Imported here, after the collector is set as drillbook's entry sets it.
    import invoke  # noqa: F401 - the task runner a release runs under, as `drillbook` does
    import requests
    import yaml
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    from drillbook.model import Runbook
    from drillbook.resources import resource

    [path] = sorted((root / "runbooks").glob("*.yaml"))
    with path.open("rb") as handle:
        runbook = Runbook.model_validate(yaml.load(handle, Loader=yaml.CSafeLoader))
    release = runbook.release(version)
    assert release is not None
    env = runbook.environments["staging"]

    journal_dir = root / ".drillbook" / "journal"
    journal_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(journal_dir / "plain.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    seq = 0

    def event(name: str, sync: bool, **fields: object) -> None:
        nonlocal seq
        seq += 1
        record = {"ts": time.time(), "run": "plain", "seq": seq, "event": name, **fields}
        os.write(fd, (json.dumps(record) + "\n").encode())
        if sync:
            os.fsync(fd)

    event("run_started", True, service=runbook.service, version=version)
    head = git(root, "rev-parse", "--show-toplevel", "--verify", "HEAD^{commit}").split()[1]
    status = git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    assert all(e[3:].startswith(".drillbook/") for e in status.split("\0") if e), status
    git(root, "var", "GIT_COMMITTER_IDENT")
    git(root, "for-each-ref", "--format=%(refname:strip=2)", "refs/tags")
    event("step_finished", False, step="preflight")
    for step, spec in (("lint", runbook.gates.lint), ("unit", runbook.gates.unit)):
        assert spec is not None
        event("step_started", False, step=step)
        subprocess.run(spec.run, cwd=root, check=True)
        event("step_finished", False, step=step)
    assert runbook.deploy is not None
    event("step_started", True, step="deploy")
    argv = [a.replace("{env}", "staging").replace("{version}", version) for a in runbook.deploy.run]
    subprocess.run(argv, cwd=root, check=True)
    event("step_finished", True, step="deploy")
    with requests.Session() as session:
        for change in release.changes:
            for ref in change.expected.checks:
                check = runbook.resolve(ref)
                url = env.url.rstrip("/") + check.get
                response = session.get(url, timeout=(3.05, check.timeout))
                assert response.status_code == 200
                event("check_finished", False, check=url, outcome="pass")
    tag = runbook.tag_name(version)
    message = f"{runbook.service} {version}\n\n" + "".join(
        f"- {c.id}: {c.title} (owner: {c.owner})\n" for c in release.changes
    )
    git(root, "tag", "--annotate", "--file=-", "--", tag, head, stdin=message)
    assert git(root, "rev-parse", "--verify", f"refs/tags/{tag}^{{commit}}").strip() == head
    event("step_finished", True, step="tag")
    sandbox = SandboxedEnvironment(
        loader=FileSystemLoader(resource("templates")),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # The template's filters, done plainly: no Markdown escaping of the runbook's text.
    sandbox.filters.update(md_text=str, md_code=lambda value: f"`{value}`")
    note = sandbox.get_template("rollback-note.md.j2").render(
        service=runbook.service,
        owner=runbook.owner,
        escalation=runbook.escalation,
        version=version,
        previous=None,
        env="staging",
        tag=tag,
        run_id="plain",
        released_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        released=True,
        tagged=True,
        retry_safe=True,
        rollback_command="drillbook rollback --env staging",
        steps=[],
        checks=[],
        changes=[
            {
                "id": c.id,
                "title": c.title,
                "owner": c.owner,
                "expected": c.expected.summary,
                "rollback": c.rollback.summary,
                "retry_safe": c.rollback.retry_safe,
                "steps": [],
            }
            for c in release.changes
        ],
        logs=[],
    )
    notes = root / "notes"
    notes.mkdir(exist_ok=True)
    tmp_fd, tmp = tempfile.mkstemp(dir=notes)
    with os.fdopen(tmp_fd, "w") as handle:
        handle.write(note)
        handle.flush()
        os.fsync(handle.fileno())
    Path(tmp).replace(notes / f"{runbook.service}-{version}-rollback.md")
    event("run_finished", True, outcome="ok")
    os.close(fd)
    return 0


if __name__ == "__main__":
    gc.set_threshold(50_000, 20, 20)
    code = main(Path(sys.argv[1]), sys.argv[2])
    gc.freeze()
    sys.exit(code)
