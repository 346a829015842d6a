"""Secrets printed by a command never leave drillbook: not on the console, not in the journal, not
in a note or an error message, in none of their usual spellings; the rest of the line stays."""

from __future__ import annotations

import base64
import os
from urllib.parse import quote, quote_plus

import pytest
from _project import API_TOKEN, SECRET_KEY, Project


def spellings(value: str) -> set[str]:
    return {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        base64.b64encode(value.encode()).decode(),
    }


def everything_written(shop: Project) -> str:
    """Every journal and note, as text."""
    texts = [path.read_text() for path in shop.journals()]
    texts += [path.read_text() for path in (shop.root / "notes").glob("*")]
    return "\n".join(texts)


def assert_no_secret(text: str) -> None:
    for secret in (SECRET_KEY, API_TOKEN):
        for spelling in spellings(secret):
            assert spelling not in text, f"{spelling!r} leaked"


def assert_readable(text: str) -> None:
    for label in ("config secret", "env token"):
        assert f"{label} as is: *** (end)" in text
        assert f"{label} url-encoded: *** (end)" in text
        assert f"{label} in a url: https://deploy:***@repo.example.com/x (end)" in text
        assert f"{label} header: Authorization: Bearer *** (end)" in text


def test_secrets_printed_by_a_gate_are_masked_everywhere(shop: Project) -> None:
    result = shop.run("release", "--version", "1.0.0", FIXTURE_LEAK="lint")

    assert result.code == 0, result
    assert_readable(result.out)
    assert_no_secret(result.text)
    written = everything_written(shop)
    assert_no_secret(written)
    lint = next(e for e in shop.events() if e["event"] == "step_finished" and e["step"] == "lint")
    assert_readable(lint["output_tail"])


def test_secrets_in_a_failing_steps_error_and_digest_are_masked(shop: Project) -> None:
    result = shop.run(
        "release",
        "--version",
        "1.0.0",
        "--format",
        "json",
        FIXTURE_LEAK="unit",
        FIXTURE_LEAK_FAIL="1",
    )

    assert result.code == 1, result
    assert "giving up, the key *** was refused" in result.text
    assert_no_secret(result.text)
    assert_no_secret(everything_written(shop))


def test_the_lint_task_alone_masks_secrets_too(shop: Project) -> None:
    result = shop.run("lint", FIXTURE_LEAK="lint")
    assert result.code == 0, result
    assert_readable(result.out)
    assert_no_secret(result.text)
    assert_no_secret(everything_written(shop))


def test_a_config_file_that_does_not_parse_still_has_its_secrets_masked(shop: Project) -> None:
    # One stray line makes verify-config refuse the file; the gate still reads the secret in it.
    config = shop.root / "config" / "staging.env"
    config.write_text(f"LOG_LEVEL=info\nSECRET_KEY={SECRET_KEY}\nDEBUG on\n")
    result = shop.run("lint", FIXTURE_LEAK="lint")
    assert result.code == 0, result
    assert_readable(result.out)
    assert_no_secret(result.text)
    assert_no_secret(everything_written(shop))


def test_a_config_key_named_like_a_secret_is_masked_in_what_a_command_prints(
    shop: Project,
) -> None:
    # Not listed in config.secrets, yet verify-config masks it by its name: so does every run.
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text().replace(
        "lint: [python, gate.py, lint]", "lint: [cat, config/staging.env]"
    )
    runbook.write_text(text)
    config = shop.root / "config" / "staging.env"
    config.write_text(
        f"LOG_LEVEL=info\nSECRET_KEY={SECRET_KEY}\nSTRIPE_API_KEY=sk_live_4f3e2d1c\nTOKEN_TTL=3600\n"
    )
    result = shop.run("lint")
    assert result.code == 0, result
    assert "STRIPE_API_KEY=***" in result.out
    assert "TOKEN_TTL=3600" in result.out  # a setting, not a secret
    assert "sk_live_4f3e2d1c" not in result.text + everything_written(shop)
    assert_no_secret(result.text + everything_written(shop))


SHOW_TOKEN = """[python, -c, "import os; print('token:', os.environ['DEPLOY_TOKEN'], '(end)')"]"""


@pytest.mark.parametrize("where", ["deploy_env", "gate", "check"])
def test_a_secret_the_runbook_gives_a_command_is_masked_in_what_it_prints(
    shop: Project, where: str
) -> None:
    # `deploy_env: {DEPLOY_TOKEN: ...}` reached the commands, and one printed it: the console
    # and the journal showed the token, though its name says what it is.
    token = "dtok_51f0c2b9e8"
    given = f"{{DEPLOY_TOKEN: {token}}}"
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text()
    if where == "deploy_env":
        staging = "    config: config/staging.env\n"
        text = text.replace(staging, f"{staging}    deploy_env: {given}\n", 1)
        text = text.replace("lint: [python, gate.py, lint]", f"lint: {SHOW_TOKEN}")
    elif where == "gate":
        gate = f"lint: {{run: {SHOW_TOKEN}, env: {given}}}"
        text = text.replace("lint: [python, gate.py, lint]", gate)
    else:
        check = f"  said:\n    run: {SHOW_TOKEN}\n    env: {given}\n"
        text = text.replace("\nreleases:\n", f"{check}\nreleases:\n", 1)
        text = text.replace(
            "          checks:\n            - healthy\n",
            "          checks:\n            - healthy\n            - said\n",
            1,
        )
    runbook.write_text(text)
    shop.commit("the runbook gives a token")

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 0, result
    shown = [result.out] + [e.get(k, "") for e in shop.events() for k in ("output_tail", "excerpt")]
    assert "token: *** (end)" in "\n".join(shown), result
    assert token not in result.text + everything_written(shop)


@pytest.mark.parametrize(
    ("token", "locale"),
    [
        (b"p\xe4sswort-tok", {}),  # Latin-1 bytes: not UTF-8
        ("pässwort-tok".encode(), {"LC_ALL": "C", "PYTHONUTF8": "0"}),
    ],
)
def test_a_secret_variable_the_locale_cannot_decode_is_masked_not_a_traceback(
    shop: Project, token: bytes, locale: dict[str, str]
) -> None:
    # Python reads such a value with surrogate escapes; making its URL-encoded spellings
    # failed, and every command that prints, `check` too, ended in a traceback.
    runbook = shop.root / "runbooks" / "shop.yaml"
    show = """[python, -c, "import os, sys; sys.stdout.buffer.write(b'token: ' + """
    show += """os.environb[b'DEPLOY_TOKEN'] + b' (end)\\\\n')"]"""
    runbook.write_text(runbook.read_text().replace("[python, gate.py, lint]", show))
    shop.commit("a gate that prints the token")
    env = {**locale, "DEPLOY_TOKEN": os.fsdecode(token)}

    checked = shop.run("check", **env)
    assert checked.code == 0, checked
    result = shop.run("release", "--version", "1.0.0", **env)

    assert result.code == 0, result
    assert "lint: python -c" in result.out
    assert " token: *** (end)\n" in result.out, result
    assert any(e.get("output_tail") == "token: *** (end)" for e in shop.events())
    assert "sswort-tok" not in result.text + everything_written(shop)


def test_verify_config_never_shows_the_secret(shop: Project) -> None:
    config = shop.root / "config" / "staging.env"
    config.write_text(f"LOG_LEVEL=loud\nSECRET_KEY={SECRET_KEY}\n")
    for fmt in ("text", "json"):
        result = shop.run("verify-config", "--format", fmt)
        assert result.code == 1, result
        assert "SECRET_KEY" in result.out
        assert_no_secret(result.text)


def test_a_secret_across_the_cut_of_a_shown_config_value_is_masked(shop: Project) -> None:
    # Another key's value holds the token: a JSON of settings, shown cut to 200 characters.
    config = shop.root / "config" / "staging.env"
    settings = '{"a": "' + "x" * 170 + f'", "token": "{API_TOKEN}"}}'
    config.write_text(f"LOG_LEVEL=info\nSECRET_KEY={SECRET_KEY}\nSETTINGS={settings}\n")
    runbook = shop.root / "runbooks" / "shop.yaml"
    runbook.write_text(
        runbook.read_text().replace("[LOG_LEVEL, SECRET_KEY]", "[LOG_LEVEL, SECRET_KEY, SETTINGS]")
    )
    for fmt in ("text", "json"):
        result = shop.run("verify-config", "--format", fmt)
        assert result.code == 0, result
        assert '"token": "***"' in result.out.replace('\\"', '"')
        # Cut after masking: not even the token's head is left.
        assert API_TOKEN[:6] not in result.text


def test_no_secret_reaches_the_plan(shop: Project) -> None:
    result = shop.run("plan", "--version", "1.0.0")
    assert result.code == 0, result
    assert_no_secret(result.text)


def test_no_secret_in_a_commands_arguments_reaches_a_plan_or_a_dry_run(shop: Project) -> None:
    assert shop.run("release", "--version", "1.0.0").code == 0
    # Against the rule (secrets reach commands as environment variables), yet never shown.
    runbook = shop.root / "runbooks" / "shop.yaml"
    leaky = f'"--token", "{API_TOKEN}", "--db=https://app:hunter2hunter2@db.example.com/x"'
    runbook.write_text(
        runbook.read_text()
        .replace("[python, gate.py, lint]", f"[python, gate.py, lint, {leaky}]")
        .replace('"{url}"]', f'"{{url}}", {leaky}]')
    )
    shop.commit("arguments that hold secrets")

    for args in (
        ("plan", "--version", "1.1.0"),
        ("release", "--version", "1.1.0", "--dry-run"),
        ("rehearse", "--version", "1.1.0", "--dry-run"),
    ):
        for fmt in ("text", "json"):
            result = shop.run(*args, "--format", fmt)
            assert result.code == 0, result
            assert "--token" in result.out
            assert "hunter2hunter2" not in result.text
            assert "https://app:***@db.example.com/x" in result.out
            assert_no_secret(result.text)


def test_a_secret_written_into_a_change_never_reaches_the_tag(shop: Project) -> None:
    # A tag is pushed and kept for good: its message is masked like every other output.
    runbook = shop.root / "runbooks" / "shop.yaml"
    runbook.write_text(
        runbook.read_text().replace(
            "title: List the products", f'title: "List the products (key {SECRET_KEY})"', 1
        )
    )
    shop.commit("a secret in a title")

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 0, result
    message = shop.git("cat-file", "-p", "v1.0.0")
    assert "List the products (key ***)" in message
    assert_no_secret(message)
    assert_no_secret(result.out + result.err + everything_written(shop))


def test_a_secret_split_by_a_control_character_in_a_change_never_reaches_the_tag(
    shop: Project,
) -> None:
    # The escape becomes U+FFFD in the tag: both halves of the token would be left readable.
    runbook = shop.root / "runbooks" / "shop.yaml"
    split = f"{API_TOKEN[:6]}\\e{API_TOKEN[6:]}"
    runbook.write_text(
        runbook.read_text().replace(
            "title: List the products", f'title: "List the products (token {split})"', 1
        )
    )
    shop.commit("a token in a title")

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 0, result
    message = shop.git("cat-file", "-p", "v1.0.0")
    assert "List the products (token ***)" in message
    assert API_TOKEN[6:] not in message


def test_a_config_secret_in_an_error_at_the_commands_end_is_masked(shop: Project) -> None:
    # The holder of the lock is this test's own process, alive, with the config secret in its
    # command line: the refusal names that command (exit 75).
    from drillbook.journal import new_run_id
    from drillbook.lock import acquire_lock

    held = acquire_lock(shop.root, "staging", new_run_id(), argv=["deploy.sh", SECRET_KEY])
    try:
        text = shop.run("release", "--version", "1.0.0")
        as_json = shop.run("release", "--version", "1.0.0", "--format", "json")
    finally:
        held.release()

    assert text.code == 75, text
    assert "deploy.sh ***" in text.err
    assert as_json.code == 75, as_json
    assert_no_secret(text.text + as_json.text)


@pytest.mark.parametrize(
    "args",
    [
        ("release", "--version", "1.0.0", API_TOKEN),
        ("release", f"--{API_TOKEN}"),
        ("release", "--version", "1.0.0", "--version", API_TOKEN),
        ("release", "--version", "1.0.0", "--format", "json", API_TOKEN),
    ],
    ids=["stray-word", "unknown-option", "given-twice", "json"],
)
def test_a_secret_in_a_usage_error_is_masked_on_stderr_too(
    shop: Project, args: tuple[str, ...]
) -> None:
    result = shop.run(*args)

    assert result.code == 2, result
    assert "drillbook: " in result.err
    assert "***" in result.err
    assert_no_secret(result.text)


def test_a_secret_across_the_cut_of_a_log_line_in_the_digest_is_masked(shop: Project) -> None:
    assert shop.run("release", "--version", "1.0.0").code == 0
    log = shop.root / "var" / "staging" / "server.log"
    with log.open("a") as handle:
        handle.write(f"ERROR connect failed {'x' * 258} key={SECRET_KEY} {API_TOKEN}\n")

    result = shop.run("release", "--version", "1.1.0", FIXTURE_BROKEN="1.1.0")

    assert result.code == 4, result
    assert "newest log lines since the run started (var/staging/server.log):" in result.out
    assert "[server] ERROR connect failed xxx" in result.out
    # Cut at 300 characters after masking: not even the secret's head is left.
    assert SECRET_KEY[:6] not in result.text
    assert_no_secret(result.text)


def test_a_secret_in_a_runbook_value_shown_cut_by_check_is_masked_first(shop: Project) -> None:
    runbook = shop.root / "runbooks" / "shop.yaml"
    wrong = f'retry: "{"x" * 46}{API_TOKEN}"'
    runbook.write_text(runbook.read_text().replace("retry: {attempts: 3, interval: 100ms}", wrong))

    for fmt in ("text", "json"):
        result = shop.run("check", "--format", fmt)
        assert result.code == 2, result
        assert "expected a mapping" in result.text
        # Cut at 60 characters after masking: not even the token's head is left.
        assert API_TOKEN[:6] not in result.text
        assert "x***" in result.text


def test_docs_written_to_a_folder_named_by_a_secret_do_not_name_it(shop: Project) -> None:
    result = shop.run("docs", "--out", f"site-{API_TOKEN}")
    assert result.code == 0, result
    assert "wrote 4 of 4 files to site-***" in result.out
    assert_no_secret(result.text)
