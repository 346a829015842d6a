"""A project of several runbooks: each service's versions are its own, and every command that
drillbook prints names the service, so that typing it works."""

from __future__ import annotations

import json

from _project import Project

PAYMENTS = """\
drillbook: 1
service: payments
owner: team-pay
tag: "payments-v{version}"
environments:
  staging:
    url: http://127.0.0.1:9
gates:
  lint: [python, -c, "pass"]
  unit: [python, -c, "pass"]
deploy:
  run: [python, -c, "pass"]
  timeout: 10s
releases:
  - version: 2.0.0
    changes:
      - id: cards
        title: Take cards
        owner: dana
        expected: Cards are taken.
        rollback: Deploy the previous version again.
  - version: 2.1.0
    changes:
      - id: wallets
        title: Take wallets
        owner: dana
        expected: Wallets are taken.
        rollback: Deploy 2.0.0 again.
"""


def test_each_service_rolls_back_from_its_own_version(released: Project) -> None:
    shop = released
    (shop.root / "runbooks" / "pay.yaml").write_text(PAYMENTS)
    shop.commit("a second service")
    assert shop.run("release", "--service", "shop", "--version", "1.1.0").code == 0
    deployed = shop.run("deploy", "--service", "payments", "--version", "2.1.0")
    assert deployed.code == 0, deployed

    # The newest deploy to staging is payments'; shop still runs 1.1.0.
    result = shop.run("rollback", "--service", "shop", "--env", "staging")

    assert result.code == 0, result
    assert "rolling back staging from 1.1.0 to 1.0.0" in result.out
    assert shop.served_version() == "1.0.0"

    history = json.loads(shop.run("history", "--format", "json").out)
    shop_rollback = next(e for e in history if e["service"] == "shop")
    assert shop_rollback["undo"] == "drillbook deploy --service shop --env staging --version 1.1.0"
    payments = next(e for e in history if e["service"] == "payments")
    assert "drillbook deploy --service payments --env staging" in payments["undo"]

    docs = shop.run("docs")
    assert docs.code == 0, docs
    page = (shop.root / "site" / "shop.md").read_text()
    assert "drillbook rollback --service shop --env staging" in page
    assert "drillbook rollback --env staging" not in page

    several = shop.run("rollback", "--env", "staging")
    assert several.code == 2, several
    assert "several runbooks in runbooks/ (services payments, shop)" in several.err


def test_docs_of_one_service_keep_the_index_of_the_whole_site(shop: Project) -> None:
    (shop.root / "runbooks" / "pay.yaml").write_text(PAYMENTS)
    shop.commit("a second service")
    assert shop.run("docs").code == 0
    index = (shop.root / "site" / "index.md").read_text()
    assert "payments" in index and "shop" in index

    one = shop.run("docs", "--service", "payments")

    assert one.code == 0, one
    assert (shop.root / "site" / "index.md").read_text() == index
    assert shop.run("docs", "--check").code == 0


def test_two_services_tagging_alike_get_a_warning_not_a_failure(shop: Project) -> None:
    (shop.root / "runbooks" / "pay.yaml").write_text(
        PAYMENTS.replace('tag: "payments-v{version}"\n', "")
    )

    result = shop.run("check")

    assert result.code == 0, result
    assert (
        "warning: runbooks/pay.yaml:1:1: tag: 2 services of this project tag their releases "
        "'v{version}' (payments, shop): a version of one may be taken for another's"
    ) in result.out
    data = json.loads(shop.run("check", "--format", "json").out)
    assert [w["field"] for w in data["warnings"]] == ["tag"]


def test_a_killed_run_of_another_service_is_named_with_its_service(shop: Project) -> None:
    # Services of one project share each environment's lock and its unfinished runs: the
    # person releasing shop must learn that the run in the way is one of payments'.
    slow = PAYMENTS.replace('unit: [python, -c, "pass"]', "unit: [python, gate.py, unit]")
    (shop.root / "runbooks" / "pay.yaml").write_text(slow)
    shop.commit("a second service")
    first = shop.start(
        "release", "--service", "payments", "--version", "2.0.0", FIXTURE_SLOW_GATE="unit"
    )
    shop.read_until(first, "unit: sleeping")
    run_id = shop.journals()[-1].stem

    held = shop.run("release", "--service", "shop", "--version", "1.0.0")
    first.kill()
    first.communicate()
    refused = shop.run("release", "--service", "shop", "--version", "1.0.0")
    abandoned = shop.run("abandon", run_id)

    assert held.code == 75, held
    assert "--service payments" in held.err
    assert refused.code == 3, refused
    assert f"run {run_id} (release of payments 2.0.0 on staging" in refused.err
    assert abandoned.code == 0, abandoned
    assert shop.run("release", "--service", "shop", "--version", "1.0.0").code == 0


def test_commands_in_messages_note_and_tag_name_the_service(released: Project) -> None:
    # With two runbooks, `drillbook rollback --env staging` is refused (exit 2: which one?):
    # every command drillbook writes for a service must carry its --service to work as typed.
    shop = released
    (shop.root / "runbooks" / "pay.yaml").write_text(PAYMENTS)
    shop.commit("a second service")

    done = shop.run("release", "--service", "shop", "--version", "1.1.0")
    done_run = shop.journals()[-1].stem
    kept = shop.run(
        "release",
        "--service",
        "shop",
        "--version",
        "1.2.0",
        "--no-auto-rollback",
        FIXTURE_BROKEN="1.2.0",
    )
    kept_run = shop.journals()[-1].stem
    as_json = shop.run("history", "--format", "json")

    assert done.code == 0, done
    typed = "drillbook rollback --service shop --env staging --to 1.0.0"
    assert f"Roll back: {typed}" in shop.git("tag", "-n99", "-l", "v1.1.0")
    assert typed in (shop.root / "notes" / "shop-1.1.0-rollback.md").read_text()
    assert kept.code == 5, kept
    assert "`drillbook rollback --service shop --env staging --to 1.1.0`" in kept.out
    assert "drillbook rollback --env" not in kept.out + kept.err
    assert "drillbook rollback --env" not in as_json.out
    # The journal too: a log store shows `run_started` alone, and its undo is typed from there.
    journal = "".join(p.read_text() for p in shop.journals() if p.stem in (done_run, kept_run))
    assert "drillbook rollback --env" not in journal
    assert "drillbook deploy --env" not in journal
    [started] = [e for e in shop.events(kept_run) if e["event"] == "run_started"]
    assert started["undo"] == "drillbook rollback --service shop --env staging --to 1.1.0"

    # A command's own output is the command's: shown as it wrote it, only masked.
    said = PAYMENTS.replace(
        'lint: [python, -c, "pass"]', "lint: [python, -c, \"print('drillbook release now')\"]"
    )
    (shop.root / "runbooks" / "pay.yaml").write_text(said)
    shop.commit("payments' lint speaks")
    own = shop.run("release", "--service", "payments", "--version", "2.0.0")
    assert own.code == 0, own
    assert "lint │ drillbook release now" in own.out


def test_a_tag_format_shared_as_service_v_version_tags_each_service_its_own(
    shop: Project,
) -> None:
    shared = 'tag: "{service}/v{version}"\n'
    runbook = shop.root / "runbooks" / "shop.yaml"
    runbook.write_text(
        runbook.read_text().replace("owner: team-shop\n", "owner: team-shop\n" + shared)
    )
    (shop.root / "runbooks" / "pay.yaml").write_text(
        PAYMENTS.replace('tag: "payments-v{version}"\n', shared)
    )
    shop.commit("two services, one tag format")
    shop.git("tag", "-a", "shop/v1.0.0", "-m", "1.0.0")
    shop.git("tag", "-a", "payments/v2.0.0", "-m", "2.0.0")

    checked = shop.run("check")
    assert checked.code == 0, checked
    assert "warning" not in checked.out  # the two formats make different tags

    for service, version, previous in (("payments", "2.1.0", "2.0.0"), ("shop", "1.1.0", "1.0.0")):
        planned = shop.run("plan", "--service", service, "--version", version)
        assert planned.code == 0, planned
        assert f"tag {service}/v{version}\n" in planned.out
        assert f"previous: {previous}\n" in planned.out

    tagged = shop.run("tag", "--service", "payments", "--version", "2.1.0")
    assert tagged.code == 0, tagged
    assert sorted(shop.tags()) == ["payments/v2.0.0", "payments/v2.1.0", "shop/v1.0.0"]
