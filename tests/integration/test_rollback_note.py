"""The rollback note says what is true: who released it, whether it is tagged, how to undo it."""

from __future__ import annotations

import os
import re

import pytest
from _project import Project


def note(shop: Project, name: str) -> str:
    return (shop.root / "notes" / name).read_text()


def test_the_first_release_note_says_to_roll_back_by_hand(released: Project) -> None:
    text = note(released, "shop-1.0.0-rollback.md")
    assert "released to staging on " in text
    assert "(tag `v1.0.0`)" in text
    # There is no version below the first: `drillbook rollback` would refuse, so the note
    # does not offer it.
    assert "## Roll back by hand" in text
    assert "drillbook rollback" in text  # named only to say it has nothing to go back to
    assert "```sh" not in text
    assert "Undo each change as its rollback below says" in text
    assert "Nothing to go back to; stop the service." in text


def test_a_later_release_note_gives_the_one_command(released: Project) -> None:
    shop = released
    assert shop.run("release", "--version", "1.1.0").code == 0
    text = note(shop, "shop-1.1.0-rollback.md")
    assert "## Roll back in one command" in text
    assert "drillbook rollback --env staging --to 1.0.0" in text
    assert "## Roll back by hand" not in text


def test_a_note_rendered_alone_never_claims_a_release(released: Project) -> None:
    shop = released
    staging_note = note(shop, "shop-1.0.0-rollback.md")

    alone = shop.run("rollback-note", "--version", "1.2.0")
    assert alone.code == 0, alone
    text = note(shop, "shop-1.2.0-rollback.md")
    assert "(tag `v1.2.0`, not made yet)" in text
    assert "by `drillbook rollback-note`" in text
    assert "not by a release" in text
    assert "released to" not in text

    # Another environment's note has a file of its own: the staging release's stays.
    production = shop.run("rollback-note", "--version", "1.0.0", "--env", "production")
    assert production.code == 0, production
    assert "wrote notes/shop-1.0.0-production-rollback.md" in production.out
    assert "note written for production" in note(shop, "shop-1.0.0-production-rollback.md")
    assert note(shop, "shop-1.0.0-rollback.md") == staging_note


@pytest.mark.parametrize(
    "fault", ["file", "dangling link", "folder", "named pipe", "device", "pipe for the folder"]
)
def test_a_note_alone_that_cannot_be_written_is_refused_saying_why(
    shop: Project, fault: str
) -> None:
    notes = shop.root / "notes"
    if fault == "file":
        notes.write_text("not a folder\n")
        found = f"{notes} is a file, expected a folder"
    elif fault == "dangling link":
        notes.symlink_to(shop.home / "removed")
        found = f"{notes} is a symbolic link to {shop.home / 'removed'}, which does not exist"
    elif fault == "folder":
        (notes / "shop-1.0.0-rollback.md").mkdir(parents=True)
        found = "shop-1.0.0-rollback.md: it is a folder, expected a file"
    elif fault == "pipe for the folder":
        os.mkfifo(notes)
        found = f"{notes} is a named pipe, expected a folder"
    elif fault == "named pipe":
        # Opened to be written, a pipe waits for a reader: the command hung.
        notes.mkdir()
        os.mkfifo(notes / "shop-1.0.0-rollback.md")
        found = "shop-1.0.0-rollback.md: it is a named pipe, not a regular file"
    else:
        # Written into, /dev/null swallowed the note and the command said it wrote it.
        notes.mkdir()
        (notes / "shop-1.0.0-rollback.md").symlink_to(os.devnull)
        found = "shop-1.0.0-rollback.md: it is a character device, not a regular file"

    result = shop.run("rollback-note", "--version", "1.0.0")

    assert result.code == 3, result
    assert "cannot write the rollback note to " in result.err
    assert found in result.err
    assert "internal error" not in result.err
    assert "hint: " in result.err


def test_the_note_says_which_change_is_not_safe_to_roll_back_twice(released: Project) -> None:
    shop = released
    runbook = shop.root / "runbooks" / "shop.yaml"
    runbook.write_text(
        runbook.read_text().replace(
            "      - id: basket\n",
            "      - id: prices\n"
            "        title: New prices\n"
            "        owner: dan\n"
            "        expected: {summary: Prices show.}\n"
            "        rollback:\n"
            "          summary: Restore the old price table by hand.\n"
            "      - id: basket\n",
        )
    )
    shop.commit("two changes in 1.2.0")

    result = shop.run("rollback-note", "--version", "1.2.0")

    assert result.code == 0, result
    text = note(shop, "shop-1.2.0-rollback.md")
    assert "- **Retry safe:** NO: check the state before running the rollback again" in text
    changes = text.split("## What changed in 1.2.0", 1)[1].split("## Where to look", 1)[0]
    prices, basket = changes.split("### prices: New prices", 1)[1].split("### basket: A basket")
    assert "- **Retry safe:** NO: check what this change's rollback did" in prices
    assert "- **Retry safe:** yes" in basket


def test_runbook_text_reads_as_typed_not_as_markdown(shop: Project) -> None:
    # The note is Markdown read on the worst day, raw or rendered: a runbook's text must not
    # add a heading, a table, raw HTML or a link to it.
    runbook = shop.root / "runbooks" / "shop.yaml"
    runbook.write_text(
        runbook.read_text().replace(
            "title: Turn the feature on",
            'title: "Turn it on\\n# Injected <script>alert(1)</script> [x](javascript:go)"',
            1,
        )
    )
    shop.commit("a title with markup")
    assert shop.run("release", "--version", "1.0.0").code == 0
    assert shop.run("release", "--version", "1.1.0").code == 0

    text = note(shop, "shop-1.1.0-rollback.md")
    (heading,) = [line for line in text.splitlines() if "Injected" in line]
    assert heading.startswith("### feature: Turn it on ")
    # Escaped, they show as typed: `\<script>`, `\[x\](javascript:go)`.
    assert not re.search(r"(?<!\\)<script", text)
    assert not re.search(r"(?<!\\)\]\(javascript:", text)
    assert "Injected \\<script>alert(1)\\</script> \\[x\\](javascript:go)" in heading
    assert not any(line.startswith("# Injected") for line in text.splitlines())


def test_the_note_lists_each_rollback_step_as_the_rollback_runs_it(released: Project) -> None:
    shop = released
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text().replace(
        "          summary: Deploy 1.0.0 again; the feature goes away.\n"
        "          retry_safe: true\n",
        "          summary: Deploy 1.0.0 again; the feature goes away.\n"
        "          retry_safe: true\n"
        "          steps:\n"
        "            - [python, -c, 'import sys; print(sys.argv)', '{env}', '{version}', "
        "'--to={previous}']\n"
        "            - shell: true\n"
        "              run: 'echo \"$DRILLBOOK_VERSION\"'\n",
        1,
    )
    assert "--to={previous}" in text
    runbook.write_text(text)
    shop.commit("rollback steps with placeholders")
    assert shop.run("release", "--version", "1.1.0").code == 0
    note_text = note(shop, "shop-1.1.0-rollback.md")

    assert shop.run("rollback", "--env", "staging").code == 0

    # The numbered list is the one the rollback ran, each command with its values filled in;
    # the shell step as written (its values arrive as variables).
    started = [e for e in shop.events() if e.get("event") == "step_started"]
    ran = started[0]["argv"]
    assert ran[-3:] == ["staging", "1.1.0", "--to=1.0.0"]
    one_command = note_text.split("It runs, in order:", 1)[1].split("and then proves", 1)[0]
    assert "1. `python -c 'import sys; print(sys.argv)' staging 1.1.0 --to=1.0.0`" in one_command
    assert '2. `echo "$DRILLBOOK_VERSION"`' in one_command
    assert "{version}" not in note_text and "{previous}" not in note_text
    change = note_text.split("### feature: Turn the feature on", 1)[1]
    assert "  - `python -c 'import sys; print(sys.argv)' staging 1.1.0 --to=1.0.0`" in change
