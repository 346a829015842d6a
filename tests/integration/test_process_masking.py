"""run_command on over-long lines: a line is cut in pieces, never inside a secret or a character."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import quote

from drillbook.process import MAX_LINE_BYTES, CommandResult, run_command
from drillbook.secrets import Masker

PY = sys.executable
SECRET = "S3cr3t-Val+/=ue!"
WIDE_SECRET = "pä55-wörd/é+"  # several bytes per character in UTF-8


def run_script(tmp_path: Path, source: str, masker: Masker) -> tuple[list[str], CommandResult]:
    """Run `source` as a Python script; the lines as `on_line` saw them, and the result."""
    script = tmp_path / "p.py"
    script.write_text(source, encoding="utf-8")
    seen: list[str] = []
    result = run_command(
        [PY, str(script)],
        cwd=tmp_path,
        timeout=60,
        masker=masker,
        on_line=seen.append,
        tail_lines=1000,
    )
    assert result.ok, result.detail
    return seen, result


def test_a_secret_across_the_line_cap_is_masked_whole(tmp_path: Path) -> None:
    # The audit's case: the cap at 65536 bytes falls six characters into the secret.
    source = f'print("LINE65530:" + "x" * (65530 - 10) + {SECRET!r})\n'
    seen, result = run_script(tmp_path, source, Masker([SECRET]))
    assert "".join(seen) == "LINE65530:" + "x" * 65520 + "***"
    for text in [*seen, result.output_tail]:
        assert "S3cr3t" not in text
        assert "Val+/=ue!" not in text


def line_with_secrets_across(cuts: list[int], secrets: list[str]) -> str:
    """A line of multi-byte filler with a secret running across each byte offset in `cuts`."""
    line = ""
    for number, cut in enumerate(cuts):
        secret = secrets[number % len(secrets)]
        # Start the secret a different number of bytes before the cut each time.
        start = cut - 1 - number % (len(secret.encode()) - 1)
        while len(line.encode()) < start - 40:
            line += "é x " + (secrets[1 - number % 2] if len(line) % 7 == 0 else "")
        line += "x" * (start - len(line.encode()))
        line += secret
    return line + " end"


def test_secrets_across_every_cut_of_a_streamed_line_are_masked(tmp_path: Path) -> None:
    # Cut points at the 64 KiB multiples (where pieces used to end), a pause in the middle so
    # that part of the line waits unfinished, and the secret's URL-encoded spelling too.
    secrets = [SECRET, WIDE_SECRET, quote(WIDE_SECRET, safe="")]
    cuts = [MAX_LINE_BYTES * k for k in range(1, 6)] + [MAX_LINE_BYTES * 3 + 500]
    cuts.sort()
    line = line_with_secrets_across(cuts, secrets)
    data_path = tmp_path / "line.txt"
    data_path.write_text(line + "\n" + line + "\n", encoding="utf-8")
    source = (
        "import sys, time\n"
        f"data = open({str(data_path)!r}, 'rb').read()\n"
        "out = sys.stdout.buffer\n"
        "for i in range(0, len(data), 50000):\n"
        "    out.write(data[i : i + 50000]); out.flush()\n"
        "    if i == 150000: time.sleep(0.3)\n"
    )
    masker = Masker([SECRET, WIDE_SECRET])
    seen, result = run_script(tmp_path, source, masker)
    assert "".join(seen) == masker.mask(line) * 2
    assert len(seen) > 2 * len(line.encode()) // MAX_LINE_BYTES  # it was cut
    for piece in seen:
        assert "\ufffd" not in piece  # no character was cut in two
        assert len(piece.encode()) <= MAX_LINE_BYTES
        for secret in [SECRET, WIDE_SECRET]:
            assert secret[:4] not in piece
            assert secret[-4:] not in piece
    assert "S3cr3t" not in result.output_tail


def test_a_character_across_the_line_cap_stays_whole(tmp_path: Path) -> None:
    source = 'import sys; sys.stdout.write("x" * 65535 + "é" * 3 + "y\\n")\n'
    seen, _ = run_script(tmp_path, source, Masker())
    assert "".join(seen) == "x" * 65535 + "éééy"
    assert len(seen) == 2
    assert all("\ufffd" not in piece for piece in seen)  # the old cut gave two of them


def test_credentials_across_the_line_cap_are_masked(tmp_path: Path) -> None:
    url = " https://deploy:hunter2hunter2@repo.example.com/x"
    header = " Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abcdefghijkl"
    lines = []
    for credential, into in ((url, 20), (header, 26), (header, 10)):
        lines.append("x" * (MAX_LINE_BYTES - into) + credential + " tail")
    data_path = tmp_path / "lines.txt"
    data_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    source = f"import sys; sys.stdout.buffer.write(open({str(data_path)!r}, 'rb').read())\n"
    masker = Masker()
    seen, result = run_script(tmp_path, source, masker)
    assert "".join(seen) == "".join(masker.mask(line) for line in lines)
    for text in [*seen, result.output_tail]:
        assert "hunter2" not in text
        assert "abcdefghijkl" not in text


def test_a_secret_split_by_a_colour_code_is_masked(tmp_path: Path) -> None:
    # A terminal shows it whole: the escape sequence inside it is drawn as nothing.
    source = f"print('key {SECRET[:5]}\\x1b[1m{SECRET[5:]}\\x1b[0m (end)', flush=True)\n"
    seen, result = run_script(tmp_path, source, Masker([SECRET]))
    assert seen == ["key ***\x1b[0m (end)"]
    assert result.output_tail == "key ***\x1b[0m (end)"
