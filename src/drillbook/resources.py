"""Where the files that travel with drillbook are: inside the wheel, or in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent.parent

# name -> (path inside the wheel, path in a source checkout)
_LOCATIONS = {
    "templates": ("_data/templates", "templates"),
    "schema": ("_data/schema", "schema"),
    "demo-service": ("_data/demo-service", "examples/demo-service"),
    "demo-runbook": ("_data/demo-runbook.yaml", "runbooks/demo-service.yaml"),
}


def resource(name: str) -> Path:
    """The path of a bundled resource (`templates`, `schema`, `demo-service`, `demo-runbook`)."""
    packaged, checkout = _LOCATIONS[name]
    inside = _PACKAGE / packaged
    if inside.exists():
        return inside
    return _CHECKOUT / checkout
