"""Masker: secrets masked by value in every spelling, credentials masked generically."""

from __future__ import annotations

import base64
import json
from collections import namedtuple
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from drillbook.secrets import MASK, MIN_SECRET_LENGTH, Masker, is_secret_name

SECRET = "s3cr3t/p@ss+word é"


@pytest.fixture
def masker() -> Masker:
    return Masker([SECRET])


def test_plain_value_is_masked_and_the_rest_stays(masker: Masker) -> None:
    assert masker.mask(f"connecting with {SECRET} to db") == "connecting with *** to db"


@pytest.mark.parametrize(
    "spelling",
    [
        quote(SECRET, safe=""),
        quote(SECRET),
        quote_plus(SECRET),
        quote(SECRET, safe="").lower(),  # lower-case escapes, as some clients write them
        "s3cr3t%2fp%40ss%2bword%20%c3%a9",
        base64.b64encode(SECRET.encode()).decode(),
        base64.b64encode(SECRET.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(SECRET.encode()).decode(),
        json.dumps(SECRET)[1:-1],
    ],
)
def test_encoded_spellings_are_masked(masker: Masker, spelling: str) -> None:
    masked = masker.mask(f"value={spelling};")
    assert masked == "value=***;"


def test_value_base64_encoded_inside_a_larger_blob_is_masked(masker: Masker) -> None:
    blob = base64.b64encode(f"user:{SECRET}".encode()).decode()
    masked = masker.mask(f"auth {blob} end")
    assert "***" in masked
    assert masked.startswith("auth ")
    assert masked.endswith(" end")
    # What is left of the blob is only the part that encodes "user:".
    assert len(masked) < len(f"auth {blob} end") - 10


def test_json_escaped_value_is_masked() -> None:
    masker = Masker(['pa"ss\\word'])
    text = json.dumps({"password": 'pa"ss\\word'})
    assert masker.mask(text) == '{"password": "***"}'


def test_url_password_is_masked_without_knowing_it() -> None:
    masker = Masker()
    text = "postgresql://app:hunter2@db.internal:5432/orders failed"
    assert masker.mask(text) == "postgresql://app:***@db.internal:5432/orders failed"


def test_url_password_with_an_unencoded_at_sign_is_masked_whole() -> None:
    assert Masker().mask("postgres://u:p@ss@host/db") == "postgres://u:***@host/db"


def test_url_without_credentials_is_left_alone() -> None:
    text = "see https://example.com:8080/users/@me and ssh://git@host:22/repo"
    assert Masker().mask(text) == text


def test_known_secret_as_url_user_name_is_masked() -> None:
    masker = Masker(["ghp_abcdefghijkl"])
    text = "https://ghp_abcdefghijkl:x-oauth-basic@github.com/org/repo.git"
    assert masker.mask(text) == "https://***:***@github.com/org/repo.git"
    assert masker.mask("https://ghp_abcdefghijkl@github.com") == "https://***@github.com"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer eyJhbGciOi.abc.def", "Authorization: Bearer ***"),
        ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic ***"),
        ("AUTHORIZATION: token ghp_1234", "AUTHORIZATION: token ***"),
        ("Authorization: rawvalue123 was refused", "Authorization: *** was refused"),
        ("Proxy-Authorization: Basic abcdef", "Proxy-Authorization: Basic ***"),
        (
            "curl -H 'Authorization: Bearer xyz789' https://api.example.com",
            "curl -H 'Authorization: Bearer ***' https://api.example.com",
        ),
        (
            'Authorization: Digest username="ann", response="6629fae4"',
            "Authorization: Digest ***",
        ),
        (
            '{"authorization": "Bearer abc.def", "accept": "json"}',
            '{"authorization": "Bearer ***", "accept": "json"}',
        ),
        (
            "{'Authorization': 'Basic dXNlcjpw', 'Accept': '*/*'}",
            "{'Authorization': 'Basic ***', 'Accept': '*/*'}",
        ),
        ('{"Authorization":"plainvalue"}', '{"Authorization":"***"}'),
    ],
)
def test_authorization_credentials_are_masked(text: str, expected: str) -> None:
    assert Masker().mask(text) == expected


def test_short_values_are_not_secrets() -> None:
    masker = Masker(["1", "on"])
    assert masker.secrets == frozenset()
    text = "step 1 of 3 is on abc"
    assert masker.mask(text) == text
    assert MIN_SECRET_LENGTH == 4  # the floor for values guessed from a variable's name
    assert Masker(["abcd"]).mask("abcd") == MASK
    # Listed explicitly, three characters are enough (test_secrets_gaps covers the rest).
    assert Masker(["abc"]).mask(text) == "step 1 of 3 is on ***"


def test_longest_secret_is_masked_whole() -> None:
    masker = Masker(["abcd", "abcdefgh"])
    assert masker.mask("x abcdefgh y abcd z") == "x *** y *** z"


def test_surrounding_whitespace_of_a_value_does_not_hide_it() -> None:
    masker = Masker(["topsecretvalue\n"])
    assert masker.mask("got topsecretvalue.") == "got ***."


def test_each_line_of_a_multi_line_secret_is_masked() -> None:
    key = (
        "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASCBKcwggSjAgEAAoIB\n-----END KEY-----"
    )
    masker = Masker([key])
    assert masker.mask("line: AQEFAASCBKcwggSjAgEAAoIB") == "line: ***"


def test_add_after_masking_takes_effect() -> None:
    masker = Masker()
    assert masker.mask("value lateadded") == "value lateadded"
    masker.add("lateadded")
    assert masker.mask("value lateadded") == "value ***"


def test_mask_obj_masks_nested_strings_and_returns_a_new_object() -> None:
    Pair = namedtuple("Pair", "left right")
    masker = Masker(["hunter22"])
    original = {
        "argv": ["deploy", "--password=hunter22"],
        "nested": {"deep": ("hunter22", 3, None), "pair": Pair("hunter22", 1.5)},
        "hunter22": True,
        "count": 7,
        "path": Path("/tmp/x"),
    }
    masked = masker.mask_obj(original)
    assert masked == {
        "argv": ["deploy", "--password=***"],
        "nested": {"deep": ("***", 3, None), "pair": Pair("***", 1.5)},
        "***": True,
        "count": 7,
        "path": Path("/tmp/x"),
    }
    assert isinstance(masked["nested"]["pair"], Pair)
    assert original["argv"] == ["deploy", "--password=hunter22"]  # untouched


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("GITHUB_TOKEN", True),
        ("TWINE_PASSWORD", True),
        ("DBPASSWD", True),
        ("CLIENT_SECRET", True),
        ("API_KEY", True),
        ("SECRET_KEY", True),
        ("KEY", True),
        ("SSH_KEY_PATH", True),
        ("AWS_ACCESS_KEYS", True),
        ("OPENAI_APIKEY", True),
        ("api_key", True),
        ("KEYBOARD", False),
        ("XKB_KEYMAP", False),
        ("MONKEY", True),  # ends in KEY as PRIVATEKEY does: a false positive we accept
        ("PIP_KEYRING_PROVIDER", False),
        ("PATH", False),
        ("HOME", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_from_environ_masks_values_of_secret_names_only() -> None:
    environ = {
        "GITHUB_TOKEN": "ghp_live_value",
        "API_KEY": "k3y-v4lue",
        "KEYBOARD": "qwertz-layout",
        "TOKENIZERS_PARALLELISM": "false",
        "DB_PASSWORD": "on",
        "HOME": "/home/ann",
    }
    masker = Masker.from_environ(environ, extra=["extra-secret"])
    assert masker.secrets == frozenset({"ghp_live_value", "k3y-v4lue", "extra-secret"})
    text = "ghp_live_value k3y-v4lue qwertz-layout false on /home/ann extra-secret"
    assert masker.mask(text) == "*** *** qwertz-layout false on /home/ann ***"


def test_masking_is_idempotent(masker: Masker) -> None:
    once = masker.mask(f"a {SECRET} https://u:pw@h Authorization: Bearer x")
    assert masker.mask(once) == once


# --- the journal's one-scan check: `may_change_json` ------------------------------------------

JSON_SECRETS = [
    "plain-secret-value",
    'with"quote',
    "back\\slash",
    "tab\there",
    "ünïcode-sécret",
]

JSON_RECORDS = [
    {"event": "step_finished", "detail": "exited 0", "duration_ms": 12},
    {"output_tail": "deploying 1.2.0\nready", "argv": ["python", "deploy.py"]},
    {"detail": "token plain-secret-value was refused"},
    {"detail": 'the key with"quote leaked'},
    {"detail": "a path back\\slash\\x"},
    {"got": 'printed {"key": "with\\"quote"} as JSON'},
    {"detail": "a url https://deploy:hunter22@repo.example.com/x"},
    {"detail": 'a url https://deploy:hun\\ter\u0001"22@repo.example.com/x'},
    {"detail": "a url without a password: https://repo.example.com/x"},
    {"headers": {"Authorization": "Bearer abcdefgh"}},
    {"nested": [{"k": ["tab\there"]}], "n": None, "ok": True},
    {"key ünïcode-sécret": "as a key"},
    {"path": Path("/srv/plain-secret-value/x")},
]


@pytest.mark.parametrize("secret", JSON_SECRETS)
@pytest.mark.parametrize("record", JSON_RECORDS, ids=range(len(JSON_RECORDS)))
def test_may_change_json_is_false_only_when_nothing_needs_masking(
    secret: str, record: dict
) -> None:
    masker = Masker([secret])
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
    if not masker.may_change_json(text):
        assert masker.mask_obj(record) == record
        assert secret not in text
    else:
        masked = json.dumps(
            masker.mask_obj(record), ensure_ascii=False, default=lambda o: masker.mask(str(o))
        )
        assert secret not in masked


def test_may_change_json_lets_ordinary_events_through_in_one_scan() -> None:
    masker = Masker(["plain-secret-value"])
    event = {"event": "step_started", "step": "lint", "argv": ["ruff", "check", "."]}
    assert masker.may_change_json(json.dumps(event, ensure_ascii=False)) is False
    assert masker.may_change_json('{"detail":"plain-secret-value"}') is True
    assert masker.may_change_json('{"url":"https://h/x"}') is False
    assert masker.may_change_json('{"url":"https://u:pw@h/x"}') is True
    assert masker.may_change_json('{"url":"https://u:p\\\\w@h/x"}') is True
    # A secret that JSON writes escaped is never judged from the text: always the full masking.
    assert Masker(['a"quoted"secret']).may_change_json('{"a":"b"}') is True


def test_may_change_json_never_lets_a_change_through_random_records() -> None:
    # Random strings over an alphabet dense in what matters: secret pieces, quotes,
    # backslashes, control characters, URL and header syntax. Seeded: the same cases each run.
    import random

    rng = random.Random(20261201)  # noqa: S311 - test cases, not secrets
    pieces = ["sec", "ret", '"', "\\", "\x01", "\n", "://", "u:", "p", "@", "h/", "Author", "iz"]
    pieces += ["ation: ", "Bearer ", "é", " ", "x", "%22", "c2Vj"]
    secrets = ["secret", 'se"cret', "sec\\ret", "secr\x01t", "sécret"]
    pieces += secrets

    def text() -> str:
        return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))

    def data(depth: int = 0) -> object:
        kind = rng.random()
        if depth > 2 or kind < 0.5:
            return text()
        if kind < 0.75:
            return [data(depth + 1) for _ in range(rng.randint(0, 3))]
        return {text(): data(depth + 1) for _ in range(rng.randint(0, 3))}

    changed = 0
    for _ in range(3000):
        masker = Masker([rng.choice(secrets), "plain-" + text()])
        record = {"event": "x", "value": data()}
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        masked = masker.mask_obj(record)
        if masked != record:
            changed += 1
            assert masker.may_change_json(line), (record, masker.secrets)
    assert changed > 300  # the cases did exercise masking
