"""Masker gaps an audit found: KEY names, repr-escaped values, short listed values, cut points."""

from __future__ import annotations

import pytest

from drillbook.secrets import (
    CUT_WINDOW,
    MASK,
    MIN_LISTED_LENGTH,
    MIN_SECRET_LENGTH,
    Masker,
    is_secret_name,
)

# --- names with KEY ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "SSHKEY",
        "PRIVATEKEY",
        "ACCESSKEY",
        "SigningKey",
        "signingkey",
        "MY-KEY",
        "SSH_KEY",
        "API_KEYS",
        "DEPLOYKEYS",
        "MY-KEY-FILE",
        "SSH_KEY_PATH",
        "KEY_ID",
        "KEY",
        "api-keys-file",
    ],
)
def test_names_with_key_at_the_end_or_delimited_are_secret(name: str) -> None:
    assert is_secret_name(name) is True


@pytest.mark.parametrize(
    "name",
    [
        "KEYBOARD",
        "KEYMAP",
        "XKB_DEFAULT_KEYMAP",
        "PIP_KEYRING_PROVIDER",
        "GNOME_KEYRING_CONTROL",
        "KEYRING_BACKEND",
        "PATH",
    ],
)
def test_names_with_key_inside_a_word_are_not_secret(name: str) -> None:
    assert is_secret_name(name) is False


def test_from_environ_masks_values_of_undelimited_key_names() -> None:
    environ = {
        "SSHKEY": "ssh-value-1",
        "PRIVATEKEY": "private-value-2",
        "ACCESSKEY": "access-value-3",
        "SigningKey": "signing-value-4",
        "MY-KEY": "dashed-value-5",
        "KEYMAP": "de-nodeadkeys",
    }
    masker = Masker.from_environ(environ)
    text = " ".join(environ.values())
    assert masker.mask(text) == "*** *** *** *** *** de-nodeadkeys"


# --- the repr-escaped form ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "Ab'cd\"ef12",  # both quotes: repr escapes the single one
        "back\\slash-secret",
        "tab\tand-newline\nsecret",
        "nbsp\xa0secret",  # printed as \xa0 by repr, as is by JSON
    ],
)
def test_repr_escaped_value_is_masked(value: str) -> None:
    masker = Masker([value])
    assert repr(value)[1:-1] != value  # the case the audit found: repr differs from the value
    assert masker.mask(f"got {value!r}") == "got '***'"
    assert masker.mask(f"got {[value, 'other']!r}") == "got ['***', 'other']"


def test_verify_config_style_message_with_quotes_is_masked() -> None:
    # The audit's line: verify-config printed the repr of `Ab'cd"ef12`.
    masker = Masker(["Ab'cd\"ef12"])
    assert masker.mask("""got 'Ab\\'cd"ef12'""") == "got '***'"


def test_repr_form_keeps_journal_judgement_safe() -> None:
    masker = Masker(["nbsp\xa0secret"])
    # The variant has a backslash, so the journal's one-scan shortcut is never taken for it.
    assert masker.may_change_json('{"detail": "nothing here"}') is True


# --- short values ---------------------------------------------------------------------------


def test_a_listed_three_character_value_is_masked() -> None:
    assert MIN_LISTED_LENGTH == 3
    masker = Masker(["Xq9"])
    assert masker.secrets == frozenset({"Xq9"})
    assert masker.mask("SECRET_KEY=Xq9 in config") == "SECRET_KEY=*** in config"
    assert masker.mask("got 'Xq9'") == "got '***'"
    added = Masker()
    added.add("Xq9")
    assert added.mask("value Xq9") == "value ***"


def test_listed_values_of_one_or_two_characters_are_not_masked() -> None:
    masker = Masker(["7", "on", " 9 ", "   "])
    assert masker.secrets == frozenset()
    text = "step 7 of 9 is on    now"
    assert masker.mask(text) == text


def test_values_guessed_from_names_keep_the_four_character_floor() -> None:
    assert MIN_SECRET_LENGTH == 4
    environ = {"SECRET_KEY": "Xq9", "API_TOKEN": "abcd", "DB_PASSWORD": "on"}
    masker = Masker.from_environ(environ, extra=["Zz8"])
    assert masker.secrets == frozenset({"abcd", "Zz8"})
    assert masker.mask("Xq9 abcd on Zz8") == "Xq9 *** on ***"
    guessed = Masker()
    guessed.add("Xq9", guessed=True)
    assert guessed.secrets == frozenset()


# --- cut points of over-long lines ----------------------------------------------------------

SECRET = "S3cr3t-Val+/=ue!"


def test_cut_point_is_the_limit_when_nothing_runs_across_it() -> None:
    text = "x" * 100 + SECRET + "y" * 100
    assert Masker([SECRET]).cut_point(text, 50) == 50
    assert Masker([SECRET]).cut_point(text, 100) == 100  # at the start is not inside
    assert Masker([SECRET]).cut_point(text, 116) == 116  # nor at the end
    assert Masker().cut_point(text, 105) == 105


@pytest.mark.parametrize("limit", range(101, 116))
def test_cut_point_moves_before_a_secret_across_the_limit(limit: int) -> None:
    masker = Masker([SECRET])
    text = "x" * 100 + SECRET + "y" * 100
    cut = masker.cut_point(text, limit)
    assert cut == 100
    assert masker.mask(text[:cut]) + masker.mask(text[cut:]) == masker.mask(text)


def test_cut_point_moves_past_a_secret_at_the_start() -> None:
    masker = Masker([SECRET])
    text = SECRET + "y" * 100
    assert masker.cut_point(text, 5) == len(SECRET)


def test_cut_point_avoids_every_spelling() -> None:
    value = "pä55 wörd/+x"
    masker = Masker([value])
    encoded = "p%C3%A455%20w%C3%B6rd%2F%2Bx"
    text = "x" * 10 + encoded + "y" * 10
    for limit in range(11, 10 + len(encoded)):
        cut = masker.cut_point(text, limit)
        assert cut == 10
    assert masker.mask(text) == "x" * 10 + MASK + "y" * 10


def test_cut_point_pieces_mask_as_the_whole_text() -> None:
    # Dense, overlapping-prone secrets: every cut must give the same masked text as no cut.
    masker = Masker(["abcab", "cabca", SECRET])
    text = ("abcabcabca x " + SECRET + " ab") * 20
    whole = masker.mask(text)
    for limit in range(1, len(text)):
        cut = masker.cut_point(text, limit)
        assert cut > 0
        assert masker.mask(text[:cut]) + masker.mask(text[cut:]) == whole, limit


@pytest.mark.parametrize("limit", [1, 3, 5000, 5001, 5002, 5003, 9999])
def test_cut_point_where_secrets_cover_every_point_near_the_limit(limit: int) -> None:
    # No point near the limit is clear of occurrences: the cut follows the scan of `mask`.
    masker = Masker(["aaaa"])
    text = "a" * 10000 + "b" * 10
    cut = masker.cut_point(text, limit)
    assert cut == (4 if limit < 4 else limit - limit % 4)
    assert masker.mask(text[:cut]) + masker.mask(text[cut:]) == masker.mask(text)


@pytest.mark.parametrize(
    "credential",
    [
        " https://deploy:hunter2hunter2@repo.example.com/x",
        " Authorization: Bearer abcdefghijklmnopqrstuvwxyz",
        ' {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="}',
    ],
)
def test_cut_point_avoids_credentials_found_by_pattern(credential: str) -> None:
    masker = Masker()
    text = "x" * 200 + credential + " tail"
    whole = masker.mask(text)
    for limit in range(201, 200 + len(credential)):
        cut = masker.cut_point(text, limit)
        assert masker.mask(text[:cut]) + masker.mask(text[cut:]) == whole, limit


def test_cut_point_with_more_to_come_keeps_the_reach_of_a_secret() -> None:
    masker = Masker([SECRET])
    text = "x" * (CUT_WINDOW + 100)
    # The text may go on: a cut must leave room behind it for anything that could cross it.
    assert masker.cut_point(text, len(text) - 1, more=True) == 100
    assert masker.cut_point("x" * 100, 50, more=True) == 0
    # A secret longer than the window: its longest spelling (base64, 4/3 as long) sets the reach.
    text = "x" * 20000
    reach = 4 * 9000 // 3
    assert Masker(["L" * 9000]).cut_point(text, len(text), more=True) == len(text) - reach + 1


def test_a_secret_of_thousands_of_characters_is_masked() -> None:
    # A PEM private key is some 1700 characters, its base64 spelling 2300: building the pattern
    # once recursed per character and hit Python's recursion limit.
    line = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC"
    body = "\n".join(f"{line}{n:013d}" for n in range(40))
    key = f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"
    masker = Masker([key])
    assert masker.mask(f"key: {key!r}") == "key: '***'"
    assert masker.mask("x" + "L" * 9000 + "y") == "x" + "L" * 9000 + "y"
    assert Masker(["L" * 9000]).mask("x" + "L" * 9000 + "y") == "x***y"


def test_a_secret_printed_by_ascii_or_as_bytes_is_masked() -> None:
    secret = "Qx'\\é7_secretval"
    masker = Masker([secret])
    for printed in (ascii(secret), repr(secret.encode()), repr(secret)):
        shown = masker.mask(f"got {printed} here")
        assert "secretval" not in shown, shown
        assert shown.startswith("got ") and shown.endswith(" here")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("key sk_li\x1b[0mve_5f2b9c1d8e7a end", "key *** end"),
        ("\x1b]0;title\x07sk_live_5f2b9c1d8e7a", "\x1b]0;title\x07***"),
        ("s\x00k\x00_live_5f2b9c1d8e7a x", "*** x"),
        ("sk_live\u200b_5f2b9c1d8e7a\x1b[1m", "***\x1b[1m"),
        # ESC 8 is one escape sequence to a terminal, but escaped or replaced it shows the 8.
        ("sk_li\x1b8ve_5f2b9c1d8e7a", "***"),
        ("sk_li\x1bve_5f2b9c1d8e7a", "***"),
        # Nothing split: what a terminal shows stays as it was.
        ("plain sk_live_5f2b9c1d8e7a \x1b[31mred\x1b[0m", "plain *** \x1b[31mred\x1b[0m"),
        # A tab or a line break is seen: the secret is not shown whole.
        ("sk_li\tve_5f2b9c1d8e7a", "sk_li\tve_5f2b9c1d8e7a"),
    ],
)
def test_a_secret_split_by_what_a_terminal_does_not_show_is_masked(text: str, masked: str) -> None:
    assert Masker(["sk_live_5f2b9c1d8e7a"]).mask_unseen(text) == masked
