"""The HTML docs in a real headless Chromium: they render, the filter filters, every link lands.

Chromium runs from `file://` with no network, as the person on call may open the pages from a
checkout. `--dump-dom` gives the DOM after the page's script ran; `index.html?q=...` prefills the
filter, so the filter is exercised without driving the browser over a debugging protocol.
Screenshots are kept in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("DRILLBOOK_CHROMIUM", "/usr/bin/chromium")
DRILLBOOK = Path(sys.executable).parent / "drillbook"

if not Path(CHROMIUM).is_file():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: install Debian's `chromium` (CI does: apt-get install "
        "chromium) or point DRILLBOOK_CHROMIUM at one",
        allow_module_level=True,
    )


def _load_fixture_module():
    path = REPO / "tests" / "unit" / "_docs_project.py"
    spec = importlib.util.spec_from_file_location("_docs_project", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_docs_project", module)
    spec.loader.exec_module(module)
    return module


docs_project = _load_fixture_module()


class Dom(HTMLParser):
    """The parts of a dumped DOM the tests look at: ids, links, rows, visible text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.rows: list[tuple[str, str]] = []  # (class, text) of each table row in a tbody
        self.hidden_ids: set[str] = set()
        self.text_parts: list[str] = []
        self.title = ""
        self._in_title = False
        self._row: list[str] | None = None
        self._row_class = ""
        self._skip = 0
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if attr.get("id"):
            self.ids.add(str(attr["id"]))
            if "hidden" in attr:
                self.hidden_ids.add(str(attr["id"]))
        if tag == "a" and attr.get("href") is not None:
            self.hrefs.append(str(attr["href"]))
        if tag == "tr" and "row" in (attr.get("class") or "").split():
            self._row, self._row_class = [], str(attr.get("class"))
        if tag in ("style", "script"):
            self._skip += 1
        self._in_title = tag == "title" and not self.title

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False
        if tag == "tr" and self._row is not None:
            self.rows.append((self._row_class, " ".join("".join(self._row).split())))
            self._row = None
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title:
            self.title += data
            return
        self.text_parts.append(data)
        if self._row is not None:
            self._row.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def dump(tmp_path: Path, url: str, *flags: str) -> Dom:
    return Dom(chromium(tmp_path, *flags, "--dump-dom", url).stdout)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture project's docs, written by the real `drillbook docs` command."""
    root = docs_project.make_project(tmp_path_factory.mktemp("docs"))
    proc = subprocess.run(
        [str(DRILLBOOK), "docs"], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return root / "site"


def test_the_service_page_renders_what_the_person_on_call_needs(site: Path, tmp_path: Path) -> None:
    dom = dump(tmp_path, (site / "shop.html").as_uri())
    text = dom.text
    assert dom.title == "shop: runbook for the person on call"
    for expected in (
        "team-checkout",  # owner
        "#checkout-oncall (PagerDuty: Checkout)",  # escalation
        "GET /health answers 200 with status ok within 2s",  # what healthy looks like
        "var/production/logs/shop.jsonl",  # where the logs are
        "python manage.py flags set saved-cards off --env staging",  # a rollback step
        "python deploy.py --env staging --version 1.0.0",  # the redeploy of the previous version
        "drillbook rollback --env production --to 1.0.0",  # the one command
        "rehearsed 2026-11-20 09:00:40 UTC: ok, restored in 2.4 s",  # last rehearsal
        "1.3.0 has never been rehearsed",  # warning
        "Time to restore shop across 3 rehearsals",  # the chart's title
    ):
        assert expected in text, expected
    assert {"owner", "escalation", "release-1-1-0", "change-1-1-0-saved-cards"} <= dom.ids


def test_the_filter_hides_rows_that_do_not_match(site: Path, tmp_path: Path) -> None:
    index = (site / "index.html").as_uri()
    everything = dump(tmp_path, index)
    assert len(everything.rows) == 6  # one service, five changes
    assert not [row for row in everything.rows if "hidden" in row[0]]
    assert "filter" not in everything.hidden_ids  # the script showed the box

    carol = dump(tmp_path, index + "?q=carol")
    shown = [text for cls, text in carol.rows if "hidden" not in cls]
    assert len(shown) == 2
    assert all("carol" in text for text in shown)
    assert "none" in carol.hidden_ids  # the "no match" line stays hidden

    nothing = dump(tmp_path, index + "?q=no-such-thing")
    assert all("hidden" in cls for cls, _ in nothing.rows)
    assert "none" not in nothing.hidden_ids


def test_without_javascript_every_row_shows_and_the_box_stays_hidden(
    site: Path, tmp_path: Path
) -> None:
    # Headless Chromium needs script for --dump-dom itself, so scripts are refused the way a
    # locked-down browser refuses them: a Content-Security-Policy that allows none.
    page = site / "index-nojs.html"
    text = (site / "index.html").read_text(encoding="utf-8")
    csp = '<meta http-equiv="Content-Security-Policy" content="script-src \'none\'">'
    page.write_text(text.replace("<head>", "<head>" + csp, 1), encoding="utf-8")
    try:
        dom = dump(tmp_path, page.as_uri() + "?q=carol")
    finally:
        page.unlink()
    assert len(dom.rows) == 6
    assert not [row for row in dom.rows if "hidden" in row[0]]
    assert "filter" in dom.hidden_ids


def test_every_link_in_every_page_lands(site: Path, tmp_path: Path) -> None:
    doms = {page.name: dump(tmp_path, page.as_uri()) for page in sorted(site.glob("*.html"))}
    assert sorted(doms) == ["index.html", "shop.html"]
    checked = 0
    for name, dom in doms.items():
        for href in dom.hrefs:
            parts = urlsplit(href)
            if parts.scheme in ("http", "https"):
                continue
            target = (site / unquote(parts.path)).resolve() if parts.path else site / name
            assert target.is_file(), f"{name}: {href} leads nowhere"
            if parts.fragment:
                ids = doms[target.name].ids if target.name in doms else set()
                assert parts.fragment in ids, f"{name}: {href}: no element with that id"
            checked += 1
    assert checked > 20


#: Runbook text that would run or reshape a page if it reached it as markup.
HOSTILE = {
    "owner: carol\n": "owner: \"carol <script>document.title='PWNED'</script>\"\n",
    "title: Pay with a saved card": 'title: "Pay <img src=x onerror=alert(1)> | `card`"',
    "links: [https://tracker.example.com/SHOP-42]": "links: ['javascript:alert(1)']",
    "notes: Not released yet.": "notes: \"</p><script>document.title='PWNED'</script>\"",
}
#: Two releases whose ids would read the same.
RC_RELEASES = "".join(
    f"""
  - version: {version}
    changes:
      - id: gift-cards
        title: Gift cards, {version}
        owner: erin
        expected: ok
        rollback: Deploy 1.2.0 again.
"""
    for version in ("1.4.0-rc-1", "1.4.0-rc.1")
)


def test_runbook_text_runs_no_script_and_every_link_lands(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    root = docs_project.make_project(tmp_path_factory.mktemp("hostile"))
    runbook = root / "runbooks" / "shop.yaml"
    text = runbook.read_text(encoding="utf-8")
    for old, new in HOSTILE.items():
        assert old in text, old
        text = text.replace(old, new)
    runbook.write_text(text + RC_RELEASES, encoding="utf-8")
    proc = subprocess.run(
        [str(DRILLBOOK), "docs"], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    out = root / "site"
    doms = {page.name: dump(tmp_path, page.as_uri()) for page in sorted(out.glob("*.html"))}
    # no script of the runbook's ran: it would have changed the title
    assert doms["shop.html"].title == "shop: runbook for the person on call"
    assert doms["index.html"].title == "Runbooks for the person on call"
    assert "carol <script>document.title='PWNED'</script>" in doms["shop.html"].text
    assert "Pay <img src=x onerror=alert(1)> | `card`" in doms["shop.html"].text
    for name, dom in doms.items():
        assert not [h for h in dom.hrefs if h.startswith("javascript:")], name
        for href in dom.hrefs:
            parts = urlsplit(href)
            if parts.scheme in ("http", "https"):
                continue
            target = (out / unquote(parts.path)).resolve() if parts.path else out / name
            assert target.is_file(), f"{name}: {href} leads nowhere"
            if parts.fragment:
                assert parts.fragment in doms[target.name].ids, f"{name}: {href}"
    ids = re.findall(r' id="([^"]+)"', (out / "shop.html").read_text(encoding="utf-8"))
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_a_long_url_leaves_what_runs_in_view(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    root = docs_project.make_project(tmp_path_factory.mktemp("long"))
    runbook = root / "runbooks" / "shop.yaml"
    text = runbook.read_text(encoding="utf-8")
    url = "url: https://shop.example.com"
    runbook.write_text(text.replace(url, f"{url}/{'p' * 300}"), encoding="utf-8")
    proc = subprocess.run(
        [str(DRILLBOOK), "docs"], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    # Where the Right now table's columns end, written into the page by a script of the test.
    page = root / "site" / "measured.html"
    measure = (
        "<script>document.body.dataset.right = Math.max(...Array.from("
        "document.querySelectorAll('#now th, #now td'), e => e.getBoundingClientRect().right))"
        "</script></body>"
    )
    page.write_text(
        (root / "site" / "shop.html").read_text(encoding="utf-8").replace("</body>", measure),
        encoding="utf-8",
    )
    dom = chromium(tmp_path, "--window-size=1280,2000", "--dump-dom", page.as_uri()).stdout
    right = float(re.search(r'data-right="([0-9.]+)"', dom).group(1))
    assert 0 < right <= 1280


def test_on_a_phone_what_runs_and_how_to_roll_back_stay_on_screen(
    site: Path, tmp_path: Path
) -> None:
    # Where the cells of Right now and What changed recently, and a release's parts, end; how
    # many rollback commands hide a part past a scroll; how wide the window is (headless
    # Chromium dumps no narrower than 500px): written into a copy of the page by the test.
    page = site.parent / "measured-phone.html"
    parts = "#now td, #recent td, .release h4, .release pre.cmd, .release .badge, .change dd"
    measure = (
        "<script>document.body.dataset.right = Math.max(...Array.from("
        f"document.querySelectorAll('{parts}'), e => e.getBoundingClientRect().right));"
        "document.body.dataset.hidden = Array.from(document.querySelectorAll('pre.cmd'))"
        ".filter(e => e.scrollWidth > e.clientWidth).length;"
        "document.body.dataset.width = window.innerWidth</script></body>"
    )
    page.write_text(
        (site / "shop.html").read_text(encoding="utf-8").replace("</body>", measure),
        encoding="utf-8",
    )
    try:
        dom = chromium(tmp_path, "--window-size=360,2000", "--dump-dom", page.as_uri()).stdout
    finally:
        page.unlink()
    right = float(re.search(r'data-right="([0-9.]+)"', dom).group(1))
    width = float(re.search(r'data-width="([0-9.]+)"', dom).group(1))
    assert width <= 640  # a phone's width, as the page's style knows it (40rem)
    assert 0 < right <= width
    assert re.search(r'data-hidden="([0-9]+)"', dom).group(1) == "0"
    text = Dom(dom).text
    assert "drillbook rollback --env production --to 1.0.0" in text


def test_on_a_phone_the_index_reads_as_cards_and_the_filter_still_hides(
    site: Path, tmp_path: Path
) -> None:
    # Written after the page's own script: how many rows show, where the cells end, how
    # wide the window is.
    page = site / "measured-index.html"
    measure = (
        "<script>var cells = document.querySelectorAll('tr.row td');"
        "var shown = Array.from(document.querySelectorAll('tr.row'))"
        ".filter(e => e.getClientRects().length);"
        "document.body.dataset.right = Math.max(...Array.from(cells,"
        " e => e.getBoundingClientRect().right));"
        "document.body.dataset.shown = shown.length;"
        "document.body.dataset.lefts = new Set(Array.from(shown[0].cells,"
        " e => Math.round(e.getBoundingClientRect().left))).size;"
        "document.body.dataset.width = window.innerWidth</script></body>"
    )
    page.write_text(
        (site / "index.html").read_text(encoding="utf-8").replace("</body>", measure),
        encoding="utf-8",
    )
    try:
        dom = chromium(
            tmp_path, "--window-size=360,2000", "--dump-dom", page.as_uri() + "?q=carol"
        ).stdout
    finally:
        page.unlink()
    width = float(re.search(r'data-width="([0-9.]+)"', dom).group(1))
    assert width <= 640
    assert 0 < float(re.search(r'data-right="([0-9.]+)"', dom).group(1)) <= width
    assert re.search(r'data-shown="([0-9]+)"', dom).group(1) == "2"  # carol's two changes
    assert re.search(r'data-lefts="([0-9]+)"', dom).group(1) == "1"  # cells one above another


def test_on_a_phone_a_long_word_in_a_card_breaks_inside_it(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    root = docs_project.make_project(tmp_path_factory.mktemp("longword"))
    runbook = root / "runbooks" / "shop.yaml"
    text = runbook.read_text(encoding="utf-8")
    runbook.write_text(
        text.replace("owner: team-checkout", f"owner: team-{'x' * 120}", 1), encoding="utf-8"
    )
    proc = subprocess.run(
        [str(DRILLBOOK), "docs"], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    # How many cells hold text that runs past their edge, counted by a script of the test.
    page = root / "site" / "measured.html"
    measure = (
        "<script>document.body.dataset.over = Array.from(document.querySelectorAll("
        "'tr.row td')).filter(e => e.scrollWidth > e.clientWidth + 1).length;"
        "document.body.dataset.width = window.innerWidth</script></body>"
    )
    page.write_text(
        (root / "site" / "index.html").read_text(encoding="utf-8").replace("</body>", measure),
        encoding="utf-8",
    )
    dom = chromium(tmp_path, "--window-size=360,2000", "--dump-dom", page.as_uri()).stdout
    width = float(re.search(r'data-width="([0-9.]+)"', dom).group(1))
    assert width <= 640
    assert re.search(r'data-over="([0-9]+)"', dom).group(1) == "0"


def test_screenshots_for_a_person_to_look_at(site: Path, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for page, height in (("shop.html", 3600), ("index.html", 1000)):
        shot = ARTIFACTS / f"docs-{Path(page).stem}.png"
        shot.unlink(missing_ok=True)
        chromium(
            tmp_path, f"--screenshot={shot}", f"--window-size=1280,{height}", (site / page).as_uri()
        )
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 20_000  # a blank page compresses to far less
    narrow = ARTIFACTS / "docs-shop-phone.png"
    chromium(
        tmp_path, f"--screenshot={narrow}", "--window-size=390,2400", (site / "shop.html").as_uri()
    )
    assert narrow.is_file()
