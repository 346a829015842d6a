"""A project's own templates: used in place of the defaults, and when broken, said so with the
file and the line, found before a release changes anything."""

from __future__ import annotations

import json

import pytest
from _project import SECRET_KEY, Project


def template(shop: Project, name: str, text: str) -> None:
    folder = shop.root / "templates"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    shop.commit(f"the project's {name}")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("# note\n{% if %}\n", "rollback-note.md.j2:2 failed to render"),
        ("# note\n\n{{ no_such_name }}\n", "rollback-note.md.j2:3 failed to render"),
        ("{% extends 'rollback-note.md.j2' %}\n", "RecursionError"),
        (
            "# note\n{% for a in range(99999) %}{% for b in range(99999) %}{{ 'undo ' * 9 }}"
            "{% endfor %}{% endfor %}\n",
            "rollback-note.md.j2 made over 32 MiB of text",
        ),
        ("", "templates/rollback-note.md.j2 rendered no text, expected a page"),
    ],
    ids=["syntax", "undefined", "extends-itself", "runaway-loop", "empty"],
)
def test_a_broken_note_template_is_bad_input_found_before_the_first_step(
    released: Project, text: str, said: str
) -> None:
    shop = released
    template(shop, "rollback-note.md.j2", text)
    journals = shop.journals()

    result = shop.run("release", "--version", "1.1.0")

    assert result.code == 2, result
    assert said in result.err
    assert "templates/rollback-note.md.j2" in result.err
    assert "found before the first step, nothing ran" in result.err
    assert "internal error" not in result.err
    assert shop.journals() == journals
    assert shop.served_version() == "1.0.0"
    assert shop.tags() == ["v1.0.0"]


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("folder", "templates/rollback-note.md.j2 is a folder, expected a file"),
        ("link-out", "outside the project"),
    ],
)
def test_a_note_template_that_is_no_file_of_the_project_refuses_the_release(
    released: Project, kind: str, said: str
) -> None:
    # A folder in its place used to be passed over for the default, and a link out of the
    # project put whatever it pointed at in the note.
    shop = released
    note = shop.root / "templates" / "rollback-note.md.j2"
    note.parent.mkdir()
    if kind == "folder":
        note.mkdir()
        (note / "draft.md").write_text("# a draft\n")
    else:
        outside = shop.home / "notes.md.j2"
        outside.write_text("# note from outside\n")
        note.symlink_to(outside)
    shop.commit("the project's note")
    journals = shop.journals()

    result = shop.run("release", "--version", "1.1.0")

    assert result.code == 2, result
    assert said in result.err
    assert "found before the first step, nothing ran" in result.err
    assert shop.journals() == journals
    assert shop.served_version() == "1.0.0"
    assert shop.tags() == ["v1.0.0"]


def test_a_template_error_names_the_file_and_line_and_a_missing_include_by_its_name(
    released: Project,
) -> None:
    shop = released
    template(shop, "rollback-note.md.j2", "# note\n\n\n{{ no_such }}\n")
    undefined = shop.run("rollback-note", "--version", "1.0.0")
    assert undefined.code == 2, undefined
    assert "templates/rollback-note.md.j2:4 failed to render: 'no_such' is undefined" in (
        undefined.err
    )

    template(shop, "rollback-note.md.j2", '{% include "partials/fotter.md.j2" %}\n')
    missing = shop.run("rollback-note", "--version", "1.0.0")
    assert missing.code == 2, missing
    assert "template 'partials/fotter.md.j2' (included by rollback-note.md.j2) not found" in (
        missing.err
    )


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("# report\n{% for s in steps %}\n", "templates/rehearsal-report.md.j2:2 failed to"),
        ("# report\n{{ steps[0].no_such }}\n", "report.md.j2:2 failed to render: 'dict"),
        ('# report\n{% include "parts/head.md.j2" %}\n', "by rehearsal-report.md.j2) not"),
    ],
    ids=["syntax", "undefined", "missing-include"],
)
def test_a_broken_report_template_refuses_the_rehearsal_before_its_first_deploy(
    released: Project, text: str, said: str
) -> None:
    # It was found once staging had been deployed and rolled back: the rehearsal ended with
    # exit 0 and no report.
    shop = released
    assert shop.run("release", "--version", "1.1.0").code == 0
    template(shop, "rehearsal-report.md.j2", text)
    journals = shop.journals()

    planned = shop.run("rehearse", "--version", "1.1.0", "--dry-run")
    result = shop.run("rehearse", "--version", "1.1.0")

    for run in (planned, result):
        assert run.code == 2, run
        assert said in run.err
        assert "found before the first step, nothing ran" in run.err
    assert shop.journals() == journals
    assert shop.served_version() == "1.1.0"
    assert not (shop.root / "reports").exists()


def test_a_report_template_that_fails_still_leaves_the_json_report(released: Project) -> None:
    shop = released
    assert shop.run("release", "--version", "1.1.0").code == 0
    # One that fails only on what the run found (its run id), past the check before the start.
    template(
        shop,
        "rehearsal-report.md.j2",
        '# report\n{% if run != "(this run)" %}{{ range(10**9)|length }}{% endif %}\n',
    )

    result = shop.run("rehearse", "--version", "1.1.0")

    assert "internal error" not in result.err, result
    assert "the report was not written" in result.out + result.err
    assert "OverflowError" in result.out + result.err
    finished = next(e for e in shop.events() if e["event"] == "rehearsal_finished")
    assert finished["report_md"] is None
    report = json.loads((shop.root / finished["report_json"]).read_text())
    assert report["outcome"] == "ok"


def test_a_template_that_fails_on_a_secret_does_not_show_it(released: Project) -> None:
    shop = released
    assert shop.run("release", "--version", "1.1.0").code == 0
    failing = f'# page\n{{{{ {{}}["{SECRET_KEY}"] }}}}\n'
    for name in ("rollback-note.md.j2", "rehearsal-report.md.j2", "docs-service.md.j2"):
        template(shop, name, failing)

    runs = [
        shop.run("release", "--version", "1.2.0"),
        shop.run("rollback-note", "--version", "1.1.0"),
        shop.run("rehearse", "--version", "1.1.0"),
        shop.run("docs"),
    ]

    for result in runs:
        assert "failed to render: 'dict object' has no attribute '***'" in result.text, result
        assert SECRET_KEY not in result.text, result
    for path in shop.journals():
        assert SECRET_KEY not in path.read_text(), path


def test_a_note_template_that_changes_a_secret_still_shows_it_masked(released: Project) -> None:
    # Masking the page alone missed a secret that the template itself changed: upper-cased,
    # cut by `truncate`, or broken over lines by `wordwrap`.
    shop = released
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text()
    rollback = "          summary: Deploy 1.0.0 again; the feature goes away.\n"
    step = f'          steps:\n            - run: [python, gate.py, lint, --key, "{SECRET_KEY}"]\n'
    assert rollback in text
    runbook.write_text(text.replace(rollback, rollback + step))
    template(
        shop,
        "rollback-note.md.j2",
        "# note\n{% for s in steps %}\n{{ s | upper }}\n{{ s | wordwrap(12) }}\n"
        "{{ s | truncate(40, killwords=True, end='') }}\n{% endfor %}\n",
    )

    written = shop.run("rollback-note", "--version", "1.1.0")
    assert written.code == 0, written
    note = (shop.root / "notes" / "shop-1.1.0-rollback.md").read_text()
    assert "--KEY ***" in note
    template(shop, "rollback-note.md.j2", "# note\n{{ {}[steps[0] | upper] }}\n")
    refused = shop.run("release", "--version", "1.1.0")
    assert refused.code == 2, refused
    assert "found before the first step, nothing ran" in refused.err

    for shown in (note, refused.text):
        for piece in ("S3CR3T", "W0RD", "P@SS"):
            assert piece not in shown.upper(), shown


def test_check_says_what_is_wrong_in_the_projects_templates(shop: Project) -> None:
    # `check` said "valid" and the release, the rehearsal or docs refused to start for it.
    template(shop, "rollback-note.md.j2", "# note\n\n{% if %}\n")
    template(shop, "docs-service.html.j2", "<p>{{ service | no_such }}</p>\n")
    template(
        shop,
        "docs-service.md.j2",
        '# {{ service }}\n{% include "parts/head.md.j2" %}\n{% include "../notes/a.md" %}\n',
    )
    (shop.root / "templates" / "parts").mkdir()
    (shop.root / "templates" / "parts" / "head.md.j2").write_bytes(b"caf\xe9\n")
    # Another tool's templates beside drillbook's (Ansible's, with filters of its own).
    (shop.root / "templates" / "nginx.conf.j2").write_text("{{ sites | to_nice_yaml }}\n")

    text = shop.run("check")
    json_run = shop.run("check", "--format", "json")

    assert text.code == 2, text
    assert text.out.splitlines()[1:] == [
        "templates/docs-service.html.j2:1:1: No filter named 'no_such'; fix the template: the "
        "filters are jinja2's own and duration, md_cell, md_code, md_text, md_link",
        "templates/docs-service.md.j2:3:1: names the template '../notes/a.md', which leads out "
        "of templates/; a template is named by its path inside templates/, without '..'",
        "templates/parts/head.md.j2:1:1: is not UTF-8 text: byte 0xe9 (invalid continuation "
        "byte); expected UTF-8; save the template as UTF-8",
        "templates/rollback-note.md.j2:3:1: Expected an expression, got 'end of statement "
        "block'; fix the template's syntax at that line",
        "1 runbook checked: 1 valid, 0 invalid; 4 template problems",
    ]
    payload = json.loads(json_run.out)
    assert json_run.code == 2
    assert payload["ok"] is False
    assert [(t["file"], t["line"]) for t in payload["templates"]] == [
        ("templates/docs-service.html.j2", 1),
        ("templates/docs-service.md.j2", 3),
        ("templates/parts/head.md.j2", 1),
        ("templates/rollback-note.md.j2", 3),
    ]

    template(shop, "rollback-note.md.j2", "# note for {{ version }}\n")
    template(shop, "docs-service.html.j2", "<p>{{ service }}</p>\n")
    template(shop, "docs-service.md.j2", '# {{ service }}\n{% include "parts/head.md.j2" %}\n')
    (shop.root / "templates" / "parts" / "head.md.j2").write_text("café\n")
    fixed = shop.run("check")
    assert fixed.code == 0, fixed
    assert fixed.out.splitlines()[-1] == "1 runbook checked: 1 valid, 0 invalid"
