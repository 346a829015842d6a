"""`state.CurrentVersions` gives, from one read of the journal, what `current_version` gives.

Real journals in a temporary project, written by `Journal`: many runs of several services on
several environments, in random order, with runs that change nothing, runs that name no
environment, deploys that name no service and deploys to another environment than their run's.
"""

from __future__ import annotations

import random
from itertools import count
from pathlib import Path

import pytest

from drillbook.journal import Journal
from drillbook.state import CurrentVersions, current_version

ENVS = ["staging", "production", "qa"]
SERVICES = ["shop", "search", "ledger", "never-deployed"]


def write_runs(root: Path, seed: int, runs: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    clock = count(1_780_000_000, 7)
    for i in range(runs):
        ticks = iter(range(next(clock), next(clock) + 50))
        run_env = rng.choice([*ENVS, None])
        run_id = f"20260101T{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}Z-{i:06x}"
        with Journal.open(root, run_id, clock=lambda t=ticks: float(next(t)), sync=False) as j:
            j.write(
                "run_started",
                action="release",
                env=run_env,
                service=rng.choice(SERVICES[:3]),
                changes_world=rng.random() > 0.2,
            )
            for _ in range(rng.randint(0, 3)):
                j.write(
                    "deployed",
                    env=run_env if run_env and rng.random() > 0.3 else rng.choice(ENVS),
                    # A deploy journaled before runbooks named their service counts for all.
                    service=rng.choice([*SERVICES[:3], None]),
                    version=f"1.{i}.{rng.randint(0, 9)}",
                )
            j.write("run_finished", outcome="ok")


@pytest.mark.parametrize("seed", range(6))
def test_every_answer_is_current_versions(tmp_path: Path, seed: int) -> None:
    write_runs(tmp_path, seed, runs=40)

    table = CurrentVersions(tmp_path)

    answers = 0
    for env in [*ENVS, "nowhere"]:
        for service in SERVICES:
            expected = current_version(tmp_path, env, service=service)
            assert table.of(env, service) == expected, (env, service)
            answers += expected is not None
    assert answers, "the journals gave no version at all: the test would prove nothing"


def test_no_journal_means_no_version(tmp_path: Path) -> None:
    assert CurrentVersions(tmp_path).of("staging", "shop") is None


def test_the_newest_deploy_wins_whether_it_names_the_service_or_not(tmp_path: Path) -> None:
    ticks = iter(float(t) for t in range(1_780_000_000, 1_780_001_000))

    def run(run_id: str, service: str | None, version: str) -> None:
        with Journal.open(tmp_path, run_id, clock=lambda: next(ticks), sync=False) as j:
            j.write("run_started", action="deploy", env="staging", changes_world=True)
            j.write("deployed", env="staging", service=service, version=version)

    run("20260101T000001Z-aaaaaa", "shop", "1.0.0")
    run("20260101T000002Z-bbbbbb", None, "2.0.0")
    run("20260101T000003Z-cccccc", "shop", "3.0.0")

    table = CurrentVersions(tmp_path)
    assert (
        table.of("staging", "shop")
        == "3.0.0"
        == current_version(tmp_path, "staging", service="shop")
    )
    assert table.of("staging", "search") == "2.0.0"
    assert table.of("production", "shop") is None


def test_a_lost_tag_is_found_where_a_release_made_it_and_kept_it(tmp_path: Path) -> None:
    from drillbook.state import released_commit

    tag_step = {"step": "tag", "outcome": "ok", "tag": "v1.1.0"}
    runs = [
        # Made the tag, then took it back (its note failed): not where 1.1.0 was released.
        ("20260101T000001Z-000001", "aaa", [("tag_deleted", {"tag": "v1.1.0"})]),
        # Made it and rolled back: never released either.
        ("20260101T000002Z-000002", "bbb", [("rollback_started", {"to_version": "1.0.0"})]),
        ("20260101T000003Z-000003", "ccc", []),
    ]
    for i, (run_id, commit, after) in enumerate(runs):
        ticks = iter(range(1_780_000_000 + 100 * i, 1_780_000_100 + 100 * i))
        with Journal.open(tmp_path, run_id, clock=lambda t=ticks: float(next(t)), sync=False) as j:
            j.write("run_started", action="release", env="staging", service="shop", version="1.1.0")
            j.write("step_finished", **tag_step, commit=commit)
            for name, fields in after:
                j.write(name, **fields)
            j.write("run_finished", outcome="ok")
        expected = "ccc" if commit == "ccc" else None
        assert released_commit(tmp_path, "shop", "1.1.0", "v1.1.0") == expected
    assert released_commit(tmp_path, "search", "1.1.0", "v1.1.0") is None
    assert released_commit(tmp_path, "shop", "1.2.0", "v1.2.0") is None
