"""HTTP checks against a loopback server in a process of its own.

    python bench/bench_checks.py [--quick]

1. Overhead: 200 sequential GET checks through `CheckRunner.run` against a bare
   `requests.Session().get` loop on the same endpoint, each judging status and JSON; the ratio
   of throughputs (goal >= 0.8x).
2. Parallelism: 8 independent checks of a 20 ms endpoint, `samples: 3` each, through
   `run_many` (what a release's checks step calls) against the same checks run one after
   another. Samples of one check stay sequential unless the check says `concurrency`, so its
   percentiles measure latency, not the server's queue; a third row shows `concurrency: 4`.
"""

from __future__ import annotations

import sys
from typing import Any

import harness
from harness import Goal, Result, Scale, Settings, timed

SEQUENTIAL = 200
PARALLEL = 8
SAMPLES = 3
SLOW_MS = 20


def figures(settings: Settings) -> tuple[list[Result], list[Scale]]:
    """The overhead and the parallelism figures."""
    import requests

    from drillbook.checks import CheckRunner
    from drillbook.model import Environment, HttpCheck

    print("HTTP checks", flush=True)
    results = []
    with harness.http_server(SLOW_MS) as url:
        environment = Environment.model_validate({"url": url})
        check = HttpCheck.model_validate(
            {"get": "/health", "expect": {"status": 200, "json": {"status": "ok"}}}
        )
        with requests.Session() as session, CheckRunner(environment, env_name="bench") as runner:
            session.get(url + "/health").raise_for_status()  # open the connection
            runner.run(check)

            def bare() -> None:
                for _ in range(SEQUENTIAL):
                    response = session.get(url + "/health", timeout=(3.05, 5))
                    if response.status_code != 200 or response.json()["status"] != "ok":
                        raise harness.BenchError(response.text)

            def checked() -> None:
                for _ in range(SEQUENTIAL):
                    result = runner.run(check)
                    if result.outcome != "pass":
                        raise harness.BenchError(result.got)

            samples = harness.measure(
                {"CheckRunner.run": timed(checked), "bare requests.Session loop": timed(bare)},
                runs=settings.runs(15, 3),
            )
            results.append(
                Result(
                    f"{SEQUENTIAL} sequential HTTP checks on loopback",
                    samples["CheckRunner.run"],
                    samples["bare requests.Session loop"],
                    goal=Goal(">=", 0.8),
                    throughput=True,
                    per=SEQUENTIAL,
                    per_unit="check",
                )
            )

            def slow(**more: Any) -> list[tuple[str, HttpCheck]]:
                return [
                    (
                        f"slow-{i}",
                        HttpCheck.model_validate(
                            {"get": f"/slow/{i}", "samples": SAMPLES, "expect": {"status": 200}}
                            | more
                        ),
                    )
                    for i in range(PARALLEL)
                ]

            def one_by_one(checks: list[tuple[str, HttpCheck]]) -> None:
                for name, c in checks:
                    if not runner.run(c, name=name).passed:
                        raise harness.BenchError(name)

            def together(checks: list[tuple[str, HttpCheck]]) -> None:
                if not all(r.passed for r in runner.run_many(checks)):
                    raise harness.BenchError("a slow check failed")

            plain, concurrent = slow(), slow(concurrency=SAMPLES)
            samples = harness.measure(
                {
                    "run_many (parallel checks)": timed(lambda: together(plain)),
                    "run_many, concurrency 3 in each": timed(lambda: together(concurrent)),
                    "one check after another": timed(lambda: one_by_one(plain)),
                },
                runs=settings.runs(11, 3),
            )
    sequential = samples["one check after another"]
    results.append(
        Result(
            f"{PARALLEL} checks x {SAMPLES} samples, {SLOW_MS} ms endpoint",
            samples["run_many (parallel checks)"],
            sequential,
            goal=Goal("<=", 0.5),
            note="goal: independent checks run in parallel (at least twice as fast)",
        )
    )
    results.append(
        Result(
            f"the same with `concurrency: {SAMPLES}` in each check",
            samples["run_many, concurrency 3 in each"],
            sequential,
        )
    )
    for result in results:
        harness.report(result)
    return results, []


if __name__ == "__main__":
    sys.exit(harness.standalone("checks", figures))
