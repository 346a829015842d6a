"""Generate N varied, valid, demo-sized runbooks into a folder.

    python bench/gen_runbooks.py OUT_DIR [-n 1000] [--seed 7]

The files go to OUT_DIR/runbooks/ (OUT_DIR is their project root). Each one is about the size
of the demo's runbook: two or three environments, config rules, gates, a deploy, logs, a few
named checks and one to three releases of one or two changes, written in a mix of block and
flow style, with comments, quoted and unquoted scalars and, in some, anchors and aliases.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

_TEAMS = ["storefront", "payments", "search", "platform", "identity", "ledger", "growth"]
_PEOPLE = ["alice", "bob", "chen", "dana", "emeka", "fatima", "goran", "hiro", "ines", "jon"]
_WORDS = ["orders", "cart", "audit", "admin", "export", "invoice", "search", "login", "report"]


def _version(rng: random.Random, i: int) -> str:
    return f"{1 + i // 4}.{i % 4}.{rng.randint(0, 3)}"


def _change(rng: random.Random, r: int, c: int, with_alias: bool) -> str:
    word = rng.choice(_WORDS)
    cid = f"{word}-{r}-{c}"
    owner = rng.choice(_PEOPLE)
    p95 = rng.choice(["250ms", "300ms", "1s", "1.5s"])
    checks = "            - *health-check\n" if with_alias else "            - healthy\n"
    return f"""      - id: {cid}
        title: Make the {word} page show {rng.choice(_WORDS)} details
        owner: {owner}                  # required on every change
        expected:
          summary: The {word} page answers 200 and stays under {p95} at p95.
          checks:
{checks}            - get: /{word}/{c}
              expect: {{status: [200, 204], max_time: 2s}}
            - get: /{word}
              samples: {rng.randint(5, 30)}
              expect: {{status: 200, p95: {p95}, json: {{"items.0.id": {c}}}}}
        rollback:
          summary: Deploy the previous version again; the {word} table stays.
          retry_safe: {rng.choice(["true", "false"])}
          steps:
            - run: [python, scripts/migrate.py, down, "{{version}}"]
              timeout: 5m
          checks:
            - healthy
            - get: /version
              expect:
                json: {{version: "{{previous}}"}}
"""


def runbook(rng: random.Random, index: int) -> str:
    """One valid runbook as text."""
    team = rng.choice(_TEAMS)
    service = f"{team}-svc-{index:04d}"
    port = 8000 + index % 1000
    with_alias = rng.random() < 0.4
    anchor = " &health-check" if with_alias else ""
    releases = rng.randint(1, 3)
    parts = [
        f"""# yaml-language-server: $schema=../schema/runbook-v1.json
drillbook: 1
service: {service}
owner: team-{team}
escalation: "#{team}-oncall"
description: >
  The {team} service, number {index}, with an admin area
  used by support staff.
tag: "release-{{version}}"

environments:
  staging:
    url: http://127.0.0.1:{port}
    config: config/staging.env
    allow_hosts: [127.0.0.1, localhost]
  production:
    url: https://{team}.example.com
    config: config/production.env
""",
        "  qa:\n    url: http://qa.internal:9000\n" if rng.random() < 0.5 else "",
        f"""
config:
  required: [DATABASE_URL, LOG_LEVEL, PAGE_SIZE, SECRET_KEY]
  secrets: [SECRET_KEY, DATABASE_URL]
  rules:
    LOG_LEVEL: {{one_of: [debug, info, warning, error]}}
    PAGE_SIZE: {{integer: {{min: 1, max: {rng.randint(100, 900)}}}}}
    DATABASE_URL: {{pattern: '^(sqlite|postgresql)://'}}
  same_keys_as: production

gates:
  lint: [ruff, check, .]
  unit: [pytest, -q, -x]

deploy:
  run: [python, deploy.py, --env, "{{env}}", --version, "{{version}}"]
  timeout: 60s

logs:
  - name: application
    where: var/{{env}}/logs/app.jsonl
    look_for: lines whose level is error; follow their request_id

checks:
  healthy:{anchor}
    get: /health
    expect: {{status: 200, json: {{status: ok}}}}
    timeout: 2s
    retry: {{attempts: {rng.randint(3, 30)}, interval: 250ms}}
  admin-responsive:
    get: /admin/orders
    samples: 20
    expect: {{status: 200, p95: 300ms}}
  smoke:
    run: [python, -m, pytest, tests/smoke, -q]
    timeout: 2m

releases:
""",
    ]
    for r in range(releases):
        parts.append(f"  - version: {_version(rng, r)}\n    changes:\n")
        for c in range(rng.randint(1, 2)):
            parts.append(_change(rng, r, c, with_alias))
    return "".join(parts)


def generate(out: Path, n: int, seed: int = 7) -> Path:
    """Write n runbooks to out/runbooks/ and return that folder."""
    rng = random.Random(seed)
    folder = out / "runbooks"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"svc-{i:04d}.yaml").write_text(runbook(rng, i), encoding="utf-8")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    folder = generate(args.out, args.n, args.seed)
    print(f"wrote {args.n} runbooks to {folder}")


if __name__ == "__main__":
    main()
