"""drillbook's sandbox renders exactly what jinja2's sandbox renders, and refuses the same.

`render.environment` looks up `a.b` on a plain dict without jinja2's raised AttributeError;
these tests hold it to jinja2's own answers, through a project's templates, for keys, dict
methods, subclasses, missing names and the attributes the sandbox must refuse.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from drillbook import render as render_module
from drillbook.errors import UsageError
from drillbook.render import render

CASES: list[tuple[str, dict[str, Any]]] = [
    ("{{ d.owner }}", {"d": {"owner": "alice"}}),
    ("{{ d.a.b.c }}", {"d": {"a": {"b": {"c": 3}}}}),
    ("{% for x in rows %}{{ x.name }},{% endfor %}", {"rows": [{"name": "a"}, {"name": "b"}]}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"x": 1, "y": 2}}),
    # A key named like a dict method: jinja2 gives the method, and so must drillbook.
    ("{{ d.items is callable }} {{ d['items'] }}", {"d": {"items": "a key"}}),
    ("{{ d.get('x', 'none') }} {{ d.keys() | list }}", {"d": {"y": 1}}),
    ("{{ d.owner }}", {"d": OrderedDict(owner="bob")}),
    ("{{ d._private }}", {"d": {"_private": "a key, not an attribute"}}),
    ("{{ d.missing is defined }}", {"d": {}}),
    ("{{ text.upper() }} {{ n.real }}", {"text": "abc", "n": 5}),
]

REFUSED = [
    "{{ d.__class__.__mro__ }}",
    "{{ d.__init__.__globals__ }}",
    "{{ d.items.__self__.__class__ }}",
    "{{ ''.__class__.__subclasses__() }}",
]


def project(tmp_path: Path, template: str) -> Path:
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "page.md.j2").write_text(template)
    return tmp_path


def jinja2_renders(root: Path, context: dict[str, Any]) -> str:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(root / "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("page.md.j2").render(**context)


@pytest.mark.parametrize(("template", "context"), CASES)
def test_renders_what_jinja2s_sandbox_renders(
    tmp_path: Path, template: str, context: dict[str, Any]
) -> None:
    root = project(tmp_path, template)

    assert render("page.md.j2", context, project_root=root) == jinja2_renders(root, context)


def test_a_missing_key_is_an_error_as_in_jinja2(tmp_path: Path) -> None:
    root = project(tmp_path, "{{ d.missing }}")

    with pytest.raises(TemplateError):
        jinja2_renders(root, {"d": {"present": 1}})
    with pytest.raises(UsageError) as caught:
        render("page.md.j2", {"d": {"present": 1}}, project_root=root)
    assert "'dict object' has no attribute 'missing'" in str(caught.value)


@pytest.mark.parametrize("template", REFUSED)
def test_the_sandbox_still_refuses_internals(tmp_path: Path, template: str) -> None:
    root = project(tmp_path, template)
    context = {"d": {"owner": "alice"}}

    with pytest.raises(TemplateError):
        jinja2_renders(root, context)
    with pytest.raises(UsageError) as caught:
        render("page.md.j2", context, project_root=root)
    assert "failed to render" in str(caught.value)


# A template that runs away is stopped with a message, before it fills the memory, the disk or
# the preflight's time: by the text it makes, by the time it takes, and by `*` and `**` whose
# result alone would be past the limit.


@pytest.mark.parametrize(
    ("template", "said"),
    [
        (
            "{% for a in range(99999) %}{% for b in range(99999) %}{{ a }}{% endfor %}{% endfor %}",
            "page.md.j2 made over 32 MiB of text",
        ),
        ("{{ 'x' * 10**9 }}", "page.md.j2:1 repeats a text or list 1,000,000,000 times"),
        ("{{ ([1, 2] * 99999999) | length }}", "repeats a text or list 99,999,999 times"),
        ("{{ 3 ** 999999999 }}", "page.md.j2:1 raises 3 to the power 999,999,999"),
    ],
    ids=["text", "repeat-text", "repeat-list", "power"],
)
def test_a_runaway_template_is_stopped_with_a_message(
    tmp_path: Path, template: str, said: str
) -> None:
    root = project(tmp_path, template)

    with pytest.raises(UsageError) as caught:
        render("page.md.j2", {}, project_root=root)

    assert said in str(caught.value)
    assert "expected a page of at most 32 MiB in at most 30 s" in str(caught.value)
    assert "a loop that never ends" in (caught.value.hint or "")


def test_a_template_that_loops_past_its_time_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loops that make no text: only the time stops them (10**15 turns, at full speed).
    loops = "{% for a in range(99999) %}{% for b in range(99999) %}{% for c in range(99999) %}"
    root = project(tmp_path, loops + "{% endfor %}{% endfor %}{% endfor %}done")
    monkeypatch.setattr(render_module, "RENDER_SECONDS", 0.3)
    started = time.monotonic()

    with pytest.raises(UsageError) as caught:
        render("page.md.j2", {}, project_root=root)

    assert "page.md.j2:1 took over 0.3 s" in str(caught.value)
    assert time.monotonic() - started < 10
    # The limit is for one render: the next one has its own time.
    (tmp_path / "templates" / "ok.md.j2").write_text("{{ 6 * 7 }} {{ 'ab' * 2 }} {{ 2 ** 10 }}")
    assert render("ok.md.j2", {}, project_root=root) == "42 abab 1024"


@pytest.mark.parametrize(
    "template",
    ["{{ 'ab' * 3 }}{{ 3 * 'c' }}{{ [0] * 2 }}", "{{ 2 ** 64 }} {{ (-2) ** 3 }} {{ 2 ** -1 }}"],
)
def test_bounded_operators_render_as_in_jinja2(tmp_path: Path, template: str) -> None:
    root = project(tmp_path, template)

    assert render("page.md.j2", {}, project_root=root) == jinja2_renders(root, {})


# A name in the project's templates/ is its template or an error, never passed over for the
# default in silence, and never a file from outside the project.


def _outside_file(tmp_path: Path) -> Path:
    secret = tmp_path / "elsewhere" / "credentials"
    secret.parent.mkdir()
    secret.write_text("aws_secret_access_key = not-for-a-page\n")
    return secret


@pytest.mark.parametrize(
    ("make", "said", "hint"),
    [
        (
            lambda t, tmp: (t / "page.md.j2").symlink_to(_outside_file(tmp)),
            "template templates/page.md.j2 resolves to {tmp}/elsewhere/credentials, outside "
            "the project {tmp}/project; expected a file inside the project",
            "a symlink may lead out",
        ),
        (
            lambda t, tmp: (t / "page.md.j2").symlink_to("../missing.md.j2"),
            "template templates/page.md.j2 is a symlink to ../missing.md.j2, which does not "
            "exist; expected a file",
            "point the link at a template inside the project",
        ),
        (
            lambda t, tmp: (t / "page.md.j2").mkdir(),
            "template templates/page.md.j2 is a folder, expected a file",
            "remove templates/page.md.j2",
        ),
        (
            lambda t, tmp: (t / "page.md.j2").write_bytes(b"# page\n\ncaf\xe9 {{ 1 }}\n"),
            "template templates/page.md.j2:3 is not UTF-8 text: byte 0xe9 (invalid "
            "continuation byte); expected UTF-8",
            "save the template as UTF-8",
        ),
        (
            lambda t, tmp: (t / "page.md.j2").write_text('{% include "../runbooks/a.yaml" %}'),
            "template name '../runbooks/a.yaml' leads out of templates/ (included by page.md.j2)",
            "without '..'",
        ),
        (
            lambda t, tmp: [
                (t / "page.md.j2").write_text('# page\n{% include "parts/head.md.j2" %}\n'),
                (t / "parts").mkdir(),
                (t / "parts" / "head.md.j2").symlink_to(_outside_file(tmp)),
            ],
            "template templates/parts/head.md.j2 resolves to {tmp}/elsewhere/credentials, "
            "outside the project {tmp}/project; expected a file inside the project "
            "(included by page.md.j2)",
            "a symlink may lead out",
        ),
    ],
    ids=["link-out", "broken-link", "folder", "not-utf8", "include-dotdot", "include-link-out"],
)
def test_a_template_file_that_cannot_be_used_is_refused_by_its_path(
    tmp_path: Path, make: Any, said: str, hint: str
) -> None:
    root = tmp_path / "project"
    (root / "templates").mkdir(parents=True)
    make(root / "templates", tmp_path)

    with pytest.raises(UsageError) as caught:
        render("page.md.j2", {}, project_root=root)

    assert str(caught.value).startswith(said.format(tmp=tmp_path.resolve()))
    assert hint in (caught.value.hint or "")
    assert "not-for-a-page" not in str(caught.value)


@pytest.mark.parametrize("name", ["", ".", "/"])
def test_an_include_of_no_name_is_not_found_rather_than_the_folder(
    tmp_path: Path, name: str
) -> None:
    root = project(tmp_path, f'# page\n{{% include "{name}" %}}\n')

    with pytest.raises(UsageError) as caught:
        render("page.md.j2", {}, project_root=root)

    assert f"template {name!r} (included by page.md.j2) not found" in str(caught.value)
    assert "remove templates" not in (caught.value.hint or "")


def test_a_byte_order_mark_is_not_part_of_the_template(tmp_path: Path) -> None:
    root = project(tmp_path, "")
    (root / "templates" / "page.md.j2").write_bytes("\ufeff# page {{ 6 * 7 }}\n".encode())

    assert render("page.md.j2", {}, project_root=root) == "# page 42\n"


@pytest.mark.parametrize("template", ["", "\n\n", "{% if false %}# page{% endif %}\n"])
def test_a_template_that_renders_no_text_is_refused(tmp_path: Path, template: str) -> None:
    root = project(tmp_path, template)

    with pytest.raises(UsageError) as caught:
        render("page.md.j2", {}, project_root=root)

    assert str(caught.value).startswith(
        "template templates/page.md.j2 rendered no text, expected a page"
    )
    assert "remove it to use the default" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("template", "said", "hint"),
    [
        (
            "# page\n{{ 'x' | no_such }}\n",
            "templates/page.md.j2:2 failed to render: No filter named 'no_such'",
            "the filters are jinja2's own and duration, md_cell, md_code, md_text, md_link",
        ),
        (
            "# page\n{{ 'x' is no_such }}\n",
            "templates/page.md.j2:2 failed to render: No test named 'no_such'",
            "the tests are jinja2's own",
        ),
        (
            "# page\n{{ 'x' | round }}\n",
            "page.md.j2:2 failed to render: TypeError",
            "a filter or a test given what it cannot take",
        ),
    ],
    ids=["filter", "test", "filter-given-text"],
)
def test_a_wrong_filter_is_told_with_what_there_is(
    tmp_path: Path, template: str, said: str, hint: str
) -> None:
    root = project(tmp_path, template)

    with pytest.raises(UsageError) as caught:
        render("page.md.j2", {}, project_root=root)

    assert said in str(caught.value)
    assert not str(caught.value).endswith(".")  # a preflight adds "; found before ..."
    assert hint in (caught.value.hint or "")
    assert "extends" not in (caught.value.hint or "")
