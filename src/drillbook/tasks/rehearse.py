"""`rehearse`: on staging, deploy a version, verify it, roll it back, verify again, and time it."""

from __future__ import annotations

import json
from typing import Any

from invoke import Context, Exit

from drillbook.tasks._base import RUN_HELP, drill_task, emit_json, project, run_console


@drill_task(
    help={
        "version": "the release to rehearse (default: the newest in the runbook)",
        "env": "the environment (default: staging; another one needs --allow-env)",
        "allow_env": "allow a rehearsal on an environment other than staging",
        "dry_run": "print the steps and change nothing",
        "service": RUN_HELP["service"],
        "format": RUN_HELP["format"],
    }
)
def rehearse(
    c: Context,
    version: str | None = None,
    env: str = "staging",
    allow_env: bool = False,
    dry_run: bool = False,
    service: str | None = None,
    format: str = "text",
) -> None:
    """Rehearse a rollback: baseline, deploy V, verify, roll back, verify again; timed, reported."""
    from drillbook.files import require_writable
    from drillbook.output import plan_json, print_plan
    from drillbook.rehearse import (
        finish_rehearsal,
        plan_rehearsal,
        rehearse_flow,
        require_previous,
        require_rehearsal_env,
        require_report_renders,
    )
    from drillbook.release import pick_version, previous_version, require_env
    from drillbook.session import open_session
    from drillbook.state import current_version

    console = run_console(format)
    require_rehearsal_env(env, allow_env=allow_env)
    loaded = project(service)
    runbook = loaded.runbook
    release = pick_version(runbook, version)
    require_env(runbook, env)
    previous = require_previous(
        runbook, release.version, previous_version(loaded.root, runbook, release.version)
    )
    from drillbook.release import require_no_lost_tag

    # The baseline would deploy a version older than the one `release` goes back to.
    require_no_lost_tag(
        loaded, previous, release.version, doing=f"the rehearsal of {release.version}"
    )
    if runbook.environments[env].config is not None:
        from drillbook.configcheck import read_environment_config

        # A config file that is missing or does not parse is bad input (exit 2) before anything
        # is deployed, as for a release; its rules are judged by verify-config and a release.
        read_environment_config(runbook, env, loaded.root)
    found = current_version(loaded.root, env, service=runbook.service)
    planned = plan_rehearsal(
        runbook, env=env, version=release.version, previous=previous, found=found
    )
    # A broken report template of the project's own is bad input, said before the first deploy
    # (and by a dry run), as a release says a broken rollback note template.
    require_report_renders(loaded, env, planned, release, found)
    if dry_run:
        from drillbook.session import masker_for

        # Masked as the rehearsal it plans: a command's arguments, a URL's password.
        masker = masker_for(loaded)
        if console.masker is None:
            console.masker = masker
        probes = [("previous", previous, True), (env, f"runs {found or 'unknown'}", True)]
        if format == "json":
            emit_json(json.dumps(masker.mask_obj(plan_json(planned, probes)), indent=2))
        else:
            print_plan(console, planned, probes)
            console.print("dry run: nothing was changed")
        return
    require_writable(loaded.root / "reports", "the rehearsal report")
    from drillbook.release import expected_items, require_check_urls, rollback_items

    # Every check the rehearsal runs, judged before its first deploy, as a release does.
    for kind, checked, items in (
        ("expected", release.version, expected_items(runbook, release)),
        ("rollback", previous, rollback_items(runbook, release)),
    ):
        require_check_urls(runbook, env, items, version=checked, previous=previous, kind=kind)
    extra = {
        "previous": previous,
        "found_version": found,
        "params": {"version": release.version, "allow_env": allow_env},
        "changes": [
            {"change": ch.id, "title": ch.title, "owner": ch.owner, "rollback": ch.rollback.text}
            for ch in release.changes
        ],
    }
    with open_session(
        loaded, action="rehearse", env=env, version=release.version, console=console, extra=extra
    ) as session:
        console.print(
            f"rehearsing the rollback of {runbook.service} {release.version} to {previous} "
            f"on {env} ({env} runs {found or 'a version the journal does not know'})",
            style="bold",
        )
        result = rehearse_flow(session, planned, release, found=found)
        data = finish_rehearsal(session, release, result)
        session.outcome, session.exit_code = result.outcome, result.exit_code
        session.summary = result.headline
        _summary(session, result, data)
        if format == "json":
            emit_json(json.dumps(data, indent=2))
    if result.exit_code:
        raise Exit(code=result.exit_code)


def _took(ms: int | None) -> str:
    return f"{ms / 1000:6.2f}s" if ms is not None else "      -"


def _summary(session: Any, result: Any, data: dict[str, Any]) -> None:
    from drillbook.output import print_digest
    from drillbook.release import Outcome

    console = session.console
    if result.exit_code:
        print_digest(
            session,
            Outcome(
                result.exit_code,
                "rollback_failed" if result.outcome == "restore_failed" else result.outcome,
                result.headline,
                failed=result.failed,
                rollback=result.rollback,
            ),
        )
    else:
        console.print(console.paint(result.headline, "green"))
    t = result.timings
    v, p = result.version, result.previous
    rows = [
        (f"baseline ({p} deployed and proven)", t.baseline_ms),
        (f"deploy {v}", t.deploy_ms),
        (f"verify {v}", t.verify_ms),
        (f"restore {p} (rollback until its checks pass)", t.restore_ms),
        ("return to where it was", t.redeploy_ms),
        ("total", t.total_ms),
    ]
    console.print("timings:", style="bold")
    for label, ms in rows:
        console.print(f"  {label:<48}{_took(ms)}")
    if result.what_to_do:
        console.print(console.paint("a person must act:", "red"))
        for i, line in enumerate(result.what_to_do, 1):
            console.print(f"  {i}. {line}")
    left = result.left_on or "UNKNOWN (see above)"
    console.print(f"{session.env} runs: {left}")
    if data.get("report_md"):
        console.print(f"report: {data['report_md']}")
        console.print(f"report (json): {data['report_json']}")
    else:
        console.print(console.paint(f"the report was not written: {data['report_error']}", "red"))
    if not result.exit_code:  # the incident digest above names the journal already
        console.print(f"journal: .drillbook/journal/{session.run_id}.jsonl")
