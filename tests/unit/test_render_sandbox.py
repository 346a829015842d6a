"""drillbook's sandbox renders exactly what jinja2's sandbox renders, and refuses the same.

`render.environment` looks up `a.b` on a plain dict without jinja2's raised AttributeError;
these tests hold it to jinja2's own answers, through a project's templates, for keys, dict
methods, subclasses, missing names and the attributes the sandbox must refuse.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

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
