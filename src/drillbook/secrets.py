"""Masking of secret values in every text that leaves the program.

A `Masker` knows a set of secret values and replaces each of them with `***` wherever it
appears: as is, URL-encoded, base64-encoded, JSON-escaped, escaped as in a Python repr.
Independently of the known values it also masks the password of any `scheme://user:password@host`
URL and the credentials of any `Authorization` header, in plain text and in JSON-ish text. The
rest of the text stays as it was, so a masked message is still readable. `cut_point` says where
a line too long to pass on whole may be cut without splitting anything that would be masked.

The known values are compiled into one regular expression (a prefix trie of every variant),
rebuilt only when a secret is added, because masking runs on every line of streamed command
output; the generic patterns are precompiled at import and run only on text that can match.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"

#: Values guessed to be secrets from an environment variable's name are masked only from this
#: length on. Such a variable often holds a flag ("1", "on", "no"); masking it would replace
#: every "1" or "on" in every message, which destroys the output and protects nothing (a value
#: that short can be guessed anyway).
MIN_SECRET_LENGTH = 4

#: Values listed explicitly (`Masker(...)`, `add`: a runbook's `config.secrets`) are masked from
#: this length on. Someone said they are secrets, so a three-character one is masked too; a value
#: of one or two characters is not, because it would turn every message into asterisks.
MIN_LISTED_LENGTH = 3

#: How far around a cut of an over-long line `Masker.cut_point` looks for a URL's password or an
#: Authorization header running across it: longer than any credential such text carries (a JWT
#: is a few kilobytes), far shorter than the pieces such a line is cut into.
CUT_WINDOW = 8192

# TOKEN, SECRET, PASSWORD and PASSWD are matched anywhere in the name (GITHUB_TOKEN, DBPASSWORD,
# CLIENT_SECRET). KEY or KEYS counts at the end of the name, with or without a separator
# (API_KEY, PRIVATEKEY, SigningKey, MY-KEY, API_KEYS), and anywhere as a part delimited by `_` or
# `-` (KEY_ID, SSH_KEY_PATH, MY-KEY-FILE). As a plain substring KEY would hit settings like
# KEYBOARD, KEYMAP, XKB_DEFAULT_KEYMAP or PIP_KEYRING_PROVIDER; a name that merely ends in "key"
# (MONKEY) is a false positive we accept, since it only masks a harmless value. APIKEY is common
# enough without a separator (APIKEY_FILE) to name it anywhere.
_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|APIKEY|KEYS?$|(?:^|[_-])KEYS?[_-]",
    re.IGNORECASE,
)

# Values that a variable named like a secret holds when it is a setting, not a secret:
# TOKENIZERS_PARALLELISM=false, SECRET_SCANNING=disabled. Masking "false" everywhere would make
# every message unreadable, so `from_environ` skips them. A name-based guess is all this is;
# values listed explicitly (`Masker(...)`, `add`) are always masked.
_SETTING_WORDS = frozenset(
    {"true", "false", "yes", "no", "none", "null", "auto", "default", "enabled", "disabled"}
)


def _anycase(words: str) -> str:
    """`bearer|basic` as `[Bb][Ee]...|...`: case-insensitive, yet several times quicker for re
    to scan than a `(?i:...)` group."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in words)


# Authorization schemes followed by one credential token.
_SINGLE_VALUE_SCHEMES = "|".join(
    _anycase(w) for w in ("bearer", "basic", "token", "apikey", "api-key", "jwt", "negotiate")
)
# Schemes followed by a list of parameters (Digest username="..", response=".."): everything
# after the scheme is masked, up to the end of the line.
_PARAM_SCHEMES = "|".join(
    _anycase(w) for w in ("digest", "oauth", "hoba", "mutual", "hawk", "aws4-hmac-sha256")
)
_AUTHORIZATION = _anycase("authorization")

# scheme://user:password@host. The password is greedy up to the last '@' of the authority, so an
# unencoded '@' inside a password (a common mistake) is masked whole. The match starts at "://"
# rather than at the scheme because a literal start is far quicker to find.
_URL_PASSWORD = re.compile(r"(://[^\s/?#@:\"'<>]*:)[^\s/?#\"'<>]+(?=@)")

# The credentials of an Authorization header (Proxy-Authorization too: the match starts at
# "Authorization"). Each branch keeps a readable prefix group and masks what follows.
_AUTH_HEADER = re.compile(
    # "authorization": "Bearer xyz" or 'Authorization': 'xyz' (JSON, Python reprs): up to the
    # closing quote
    rf"(?P<json>(?P<q>[\"'])(?:[Pp]roxy-)?{_AUTHORIZATION}(?P=q)\s*:\s*(?P<q2>[\"'])"
    rf"(?:(?:{_SINGLE_VALUE_SCHEMES}|{_PARAM_SCHEMES})\s+)?)(?:\\.|(?!(?P=q2))[^\\\r\n])+"
    # Authorization: Digest username="x", response="y": up to the end of the line
    rf"|(?P<params>\b{_AUTHORIZATION}\s*[:=]\s*(?:{_PARAM_SCHEMES})\s+)[^\r\n]+"
    # Authorization: Bearer xyz / Basic abc / xyz: one token
    rf"|(?P<single>\b{_AUTHORIZATION}\s*[:=]\s*(?:(?:{_SINGLE_VALUE_SCHEMES})\s+)?)"
    r"[^\s\"',;\\]+"
)


def _mask_auth(match: re.Match[str]) -> str:
    """The readable prefix of an Authorization match, then `***`."""
    prefix = match.group("json") or match.group("params") or match.group("single") or ""
    return prefix + MASK


#: What a terminal shows as nothing: escape sequences (a colour, a window title), other
#: control characters, invisible format characters. Inside a secret, they leave it whole on
#: the screen while no spelling of it is in the text (see `Masker.mask_unseen`). A tab or a
#: line break is seen: a secret split by one is not shown whole.
_UNSEEN = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?"
    "|[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]",
    re.DOTALL,
)
#: The same characters one by one: where an escape is read otherwise (`ESC 8` shows nothing
#: on a terminal, but `\x1b8` escaped or U+FFFD in a tag leaves the 8), or is cut short.
_UNSEEN_CHARS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)
_ESCAPE = re.compile(r"%[0-9A-F]{2}")
#: Characters that JSON text writes escaped (with ensure_ascii=False).
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')


def is_setting_word(value: str) -> bool:
    """Whether a value reads as a setting (`true`, `auto`, `disabled`, ...), not as a secret."""
    return value.strip().lower() in _SETTING_WORDS


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret (token, secret, key, ...)."""
    return _SECRET_NAME.search(name) is not None


def _shifted_base64(raw: bytes) -> set[str]:
    """The base64 characters that depend only on `raw`, at each of the three byte alignments.

    A secret base64-encoded as part of a larger blob (`user:secret` in a Basic credential, a
    docker config) does not start on a 3-byte boundary; these inner runs are what it still
    shares with any such encoding.
    """
    out: set[str] = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        start = -(-8 * shift // 6)  # ceil: the first character made of secret bits only
        end = 8 * (shift + len(raw)) // 6  # floor: the last one
        inner = encoded[start:end]
        out.add(inner)
        out.add(inner.replace("+", "-").replace("/", "_"))
    # Short inner runs are too likely to occur by chance in ordinary base64 or text.
    return {v for v in out if len(v) >= 8}


def _bytes_of(value: str) -> bytes:
    """The bytes `value` stands for in UTF-8: those a byte that is not UTF-8 was read from
    (Python's surrogate escape, `\\udcff`) kept as they were, where `encode()` refused them."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no decoding made
        return value.encode("utf-8", "backslashreplace")


def _as_printed(value: str) -> set[str]:
    """`value`, and the text it reads as once a command has printed it: drillbook reads a
    command's output as UTF-8, a byte that is not UTF-8 as U+FFFD.

    A value from the environment is text as Python decoded its bytes: under a locale that is
    not UTF-8 (LC_ALL=C with PYTHONUTF8=0) `pässwort` is other text than the same bytes read
    as UTF-8, and a byte that is not UTF-8 is a surrogate escape, never U+FFFD. Masked only as
    it was, such a secret was shown as the command printed it.
    """
    out = {value}
    printed = [_bytes_of(value)]
    with contextlib.suppress(UnicodeError):
        printed.append(os.fsencode(value))  # the bytes it came from, in any locale
    for raw in printed:
        out.add(raw.decode("utf-8", "replace"))
        out.add(raw.decode("utf-8", "surrogateescape"))
    return out


def _variants(value: str) -> set[str]:
    """Every spelling of `value` that masking looks for."""
    out = {value}
    raw = _bytes_of(value)
    for encoded in (quote(raw, safe=""), quote(raw), quote_plus(raw)):
        out.add(encoded)
        out.add(_ESCAPE.sub(lambda m: m.group(0).lower(), encoded))
    for b64 in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = b64.decode("ascii")
        out.add(text)
        out.add(text.rstrip("="))
    out |= _shifted_base64(raw)
    # As it appears inside JSON text (a quote or backslash in the value is escaped there).
    out.add(json.dumps(value)[1:-1])
    out.add(json.dumps(value, ensure_ascii=False)[1:-1])
    # As it appears in a Python repr (`got 'Ab\'cd"ef'`, a list or dict printed): the text
    # between the quotes, which differs from the value only by its escapes.
    out.add(repr(value)[1:-1])
    # ascii() of it, and the repr of its UTF-8 bytes (`b'caf\xc3\xa9'`), which print a
    # secret with non-ASCII characters escaped.
    out.add(ascii(value)[1:-1])
    out.add(repr(raw)[2:-1])
    return {v for v in out if len(v) >= MIN_LISTED_LENGTH}


def _trie_pattern(words: Iterable[str]) -> str:
    """One regular expression matching any of `words`, longest first, as a prefix trie.

    Python's re tries the alternatives of `a|b|c` one by one at every position; a trie shares
    their prefixes, so the cost per position grows with the length of a secret rather than with
    the number of variants (300 variants: 12 us instead of 53 us for a 110-character line).
    The optional tail of a node is greedy, so the longest word wins where several start.
    """
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, dict]) -> str:
        children = sorted(char for char in node if char)
        if not children:
            return ""
        alternatives = []
        for char in children:
            # A node with one child and no word ending there adds just its character. Walked
            # in a loop, so recursion goes one level per branch, not per character: a secret
            # of a thousand characters (a PEM key) would exceed Python's recursion limit.
            run, child = [re.escape(char)], node[char]
            while len(child) == 1 and "" not in child:
                ((next_char, child),) = child.items()
                run.append(re.escape(next_char))
            alternatives.append("".join(run) + build(child))
        body = alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"
        return f"(?:{body})?" if "" in node else body

    return build(trie)


def _credential_spans(text: str, low: int, high: int) -> list[tuple[int, int]]:
    """Where `text[low:high]` holds a URL's password or an Authorization header's credentials."""
    window = text[low:high]
    spans = []
    if "://" in window:
        # The password is masked only where an `@` follows it: the `@` belongs to the span.
        spans += [(low + m.start(), low + m.end() + 1) for m in _URL_PASSWORD.finditer(window)]
    if "uthoriz" in window.lower():
        spans += [(low + m.start(), low + m.end()) for m in _AUTH_HEADER.finditer(window)]
    return spans


def _stretch(spans: list[tuple[int, int]], point: int) -> tuple[int, int]:
    """The stretch that `spans` cover around `point`; (point, point) if none runs across it.

    Spans that overlap one another leave no point between them to cut at, so the stretch grows
    by every span that overlaps it until none does.
    """
    across = [(left, right) for left, right in spans if left < point < right]
    if not across:
        return point, point
    start, end = min(left for left, _ in across), max(right for _, right in across)
    grown = True
    while grown:
        grown = False
        for left, right in spans:
            if left < end and right > start and (left < start or right > end):
                start, end = min(start, left), max(end, right)
                grown = True
    return start, end


def _mask_seen(literals: re.Pattern[str], unseen: re.Pattern[str], text: str) -> str:
    """`text` with each secret that `literals` finds once `unseen` is taken out masked, from
    its first character to its last, what splits it included."""
    # The text as a terminal shows it, and where each of its characters is in `text`.
    seen: list[str] = []
    where: list[int] = []
    last = 0
    for match in [*unseen.finditer(text), None]:
        end = len(text) if match is None else match.start()
        seen.append(text[last:end])
        where.extend(range(last, end))
        if match is not None:
            last = match.end()
    pieces, done = [], 0
    for match in literals.finditer("".join(seen)):
        if match.end() > match.start():
            start, end = where[match.start()], where[match.end() - 1] + 1
            pieces += [text[done:start], MASK]
            done = end
    return "".join(pieces) + text[done:]


#: The config secrets of the runbooks this process has read (`session.masker_for` adds them),
#: so that an error reported where a command ends masks them too, not only the environment's.
_REMEMBERED: set[str] = set()


def remember(values: Iterable[str]) -> None:
    """Keep `values` as secrets for every later error message of this process."""
    _REMEMBERED.update(values)


def remembered() -> frozenset[str]:
    """The secrets `remember` was given."""
    return frozenset(_REMEMBERED)


class Masker:
    """Replaces known secret values, and credentials in URLs and headers, with `***`.

    `secrets` are listed explicitly: each is masked from `MIN_LISTED_LENGTH` (3) characters on;
    a value of one or two characters is never masked.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._literals: re.Pattern[str] | None = None
        self._compiled = True
        # The length of the longest variant: how far back a cut must look (see `cut_point`).
        self._longest = 0
        # Whether every variant reads the same inside JSON text (see `may_change_json`).
        self._json_plain = True
        for value in secrets:
            self.add(value)

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] = os.environ, extra: Iterable[str] = ()
    ) -> Masker:
        """A masker for `extra` plus the values of variables whose name says secret.

        A name qualifies when it contains TOKEN, SECRET, PASSWORD or PASSWD, ends in KEY or
        KEYS, or has KEY or KEYS as a `_`- or `-`-delimited part (see `is_secret_name`). Values
        that read as settings (`true`, `false`, `auto`, ...) are skipped, and so are values
        shorter than `MIN_SECRET_LENGTH` (4); `extra` is listed explicitly and masked from
        `MIN_LISTED_LENGTH` (3). False positives remain possible (PASSWORD_STORE_DIR holds a
        path); they only make a message show `***` where a harmless value was.
        """
        masker = cls(extra)
        for name, value in environ.items():
            if is_secret_name(name) and not is_setting_word(value):
                masker.add(value, guessed=True)
        return masker

    @property
    def secrets(self) -> frozenset[str]:
        """The values added so far (too short ones excluded)."""
        return frozenset(self._secrets)

    def add(self, value: str, *, guessed: bool = False) -> None:
        """Treat `value` as a secret from now on.

        A value listed explicitly is masked from `MIN_LISTED_LENGTH` (3) characters on; one or
        two characters are ignored. `guessed=True` says the value was only guessed to be a
        secret from a variable's name: it is ignored under `MIN_SECRET_LENGTH` (4) characters.
        The length is counted without surrounding blanks.
        """
        floor = MIN_SECRET_LENGTH if guessed else MIN_LISTED_LENGTH
        candidates = {value, value.strip()}
        if "\n" in value:
            # A multi-line secret (a PEM key) reaches streamed output one line at a time, so
            # each of its lines is a secret of its own.
            candidates |= {line.strip() for line in value.splitlines()}
        # Judged without surrounding blanks, which a value read from a file often carries: " 9 "
        # would mask every 9 between spaces, and "   " the spaces of every message.
        new = {c for c in candidates if len(c.strip()) >= floor} - self._secrets
        if not new:
            return
        with self._lock:
            self._secrets |= new
            self._compiled = False

    def _compile(self) -> re.Pattern[str] | None:
        """One pattern for every variant of every secret, as a prefix trie; None if none."""
        with self._lock:
            if not self._compiled:
                variants: set[str] = set()
                for value in self._secrets:
                    for shown in _as_printed(value):
                        variants |= _variants(shown)
                literal = _trie_pattern(variants)
                self._literals = re.compile(literal) if literal else None
                self._json_plain = not any(_JSON_ESCAPED.search(v) for v in variants)
                self._longest = max(map(len, variants), default=0)
                self._compiled = True
            return self._literals

    def mask(self, text: str) -> str:
        """`text` with every secret and credential replaced by `***`.

        Known values go first, so a secret that is also a URL's password or a header's token is
        gone before the generic patterns look. Those cannot match without "://" or
        "authorization" in the text, and re scans them position by position, so they run only
        when the text has one: most lines of output cost one pass of the literal trie.
        """
        if not text:
            return text
        literals = self._literals if self._compiled else self._compile()
        if literals is not None:
            text = literals.sub(MASK, text)
        if "://" in text:
            text = _URL_PASSWORD.sub(r"\1" + MASK, text)
        if "uthoriz" in text.lower():
            text = _AUTH_HEADER.sub(_mask_auth, text)
        return text

    def mask_unseen(self, text: str) -> str:
        """`mask(text)`, and every secret split by what a terminal shows as nothing.

        A secret with an escape sequence or a control character inside (`sk_li\\x1b[0mve`)
        reads whole on a terminal, and a person reads it whole from the escaped text too; it
        is masked from its first character to its last, what splits it included.
        """
        literals = self._literals if self._compiled else self._compile()
        if literals is not None and _UNSEEN_CHARS.search(text) is not None:
            for unseen in (_UNSEEN, _UNSEEN_CHARS):
                # A pass in C first: coloured output seldom hides a secret (8 -> 5 us a line).
                if literals.search(unseen.sub("", text)) is not None:
                    text = _mask_seen(literals, unseen, text)
        return self.mask(text)

    def cut_point(self, text: str, limit: int, *, more: bool = False) -> int:
        """Where to cut `text`, too long to pass on whole, at about `limit` characters.

        The cut is never inside what `mask` would mask: a known secret in any of its spellings,
        a URL's password (with the `@` after it), an Authorization header's credentials. It is
        `limit` when nothing masked runs across that point, else a point before it, or, when
        what runs across starts at 0, the end of that. For known secrets the two pieces then
        mask exactly as `text` whole does; credentials found by pattern are looked for within
        `CUT_WINDOW` characters of `limit`.

        `more=True` says that `text` goes on beyond what is given. The cut is then at least
        `CUT_WINDOW` characters, and the longest spelling of a secret less one, before the end,
        so that whatever could run across it is seen whole; 0 means "no cut yet, wait for more
        text". Otherwise the result is at least 1 for `limit >= 1`.
        """
        literals = self._literals if self._compiled else self._compile()
        if more:
            limit = min(limit, len(text) - max(self._longest - 1, CUT_WINDOW))
        if limit <= 0:
            return 0
        if limit >= len(text):
            return len(text)
        low, high = max(0, limit - CUT_WINDOW), limit + CUT_WINDOW
        credentials = _credential_spans(text, low, high)
        # Quick: step back from `limit` to a point that no spelling runs across. The scan of
        # `mask` cannot be inside a match there, so it masks the pieces as it masks the whole.
        lowest = max(1, limit - CUT_WINDOW // 2)
        cut = limit
        while True:
            if literals is not None:
                cut = self._clear_point(literals, text, cut, lowest)
            if cut < lowest:
                break
            start = _stretch(credentials, cut)[0]
            if start == cut:
                return cut
            cut = start  # before a credential: check the secrets again from there
        # Exact when no such point is near (text like "aaaa..." for a secret "aaaa"): the
        # occurrences as `mask` finds them, scanning from the start, so the cut is never
        # inside one that is masked. `endpos` only shortens matches starting at `high` or later.
        spans = credentials
        if literals is not None:
            end = min(len(text), high + self._longest)
            for match in literals.finditer(text, 0, end):
                if match.start() >= high:
                    break
                if match.end() > low:
                    spans.append(match.span())
        start, end = _stretch(spans, limit)
        return start if start > 0 else end

    def _clear_point(self, literals: re.Pattern[str], text: str, cut: int, lowest: int) -> int:
        """The greatest point at or before `cut` that no spelling of a secret runs across.

        -1 if that point is before `lowest`.
        """
        position = cut - 1
        while position > cut - self._longest and position >= 0:
            # The trie's match is the longest spelling that starts here.
            match = literals.match(text, position)
            if match is not None and match.end() > cut:
                cut = position
                if cut < lowest:
                    return -1
            position -= 1
        return cut

    def may_change_json(self, text: str) -> bool:
        """Whether `mask_obj` could change the data that JSON `text` was written from.

        `text` is `json.dumps(data, ensure_ascii=False)`. False is a promise that every string
        in the data (keys too) is already as `mask` leaves it, so a caller may write `text` as
        it is: one scan of the whole text instead of one per string (the journal writes every
        event this way). It holds because each string is written into the text character by
        character, escaping only quotes, backslashes and control characters: a secret without
        those shows in the text as it is, and so do "authorization" and a URL's password. A
        secret with one of them always answers True.
        """
        literals = self._literals if self._compiled else self._compile()
        if not self._json_plain:
            return True
        if literals is not None and literals.search(text):
            return True
        if "uthoriz" in text.lower():
            return True
        # A URL with a password in a string is in the text too: escaping only turns characters
        # the pattern allows into others it allows (a backslash, `u`, hex digits).
        return "://" in text and _URL_PASSWORD.search(text) is not None

    def mask_data(self, data: Any) -> Any:
        """`mask_obj(data)`, after one quick look that usually finds nothing to mask.

        The look is `data` written as JSON text and judged by `may_change_json`: one pass in C
        and one scan, instead of a Python call per string (a docs page's context holds
        thousands). When nothing needs masking, `data` itself is returned, not a copy.
        """
        try:
            text = json.dumps(data, ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):  # keys json cannot write, a cycle
            return self.mask_obj(data)
        return self.mask_obj(data) if self.may_change_json(text) else data

    def mask_obj(self, obj: Any) -> Any:
        """A copy of `obj` with every string in it masked, through dicts, lists and tuples.

        Dictionary keys are masked too. Other objects are returned as they are.
        """
        if isinstance(obj, str):
            return self.mask(obj)
        if isinstance(obj, Mapping):
            return {self.mask_obj(k): self.mask_obj(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.mask_obj(v) for v in obj]
        if isinstance(obj, tuple):
            items = [self.mask_obj(v) for v in obj]
            # A named tuple is rebuilt as its own type; a plain tuple stays a tuple.
            return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
        if isinstance(obj, set | frozenset):
            return type(obj)(self.mask_obj(v) for v in obj)
        return obj
