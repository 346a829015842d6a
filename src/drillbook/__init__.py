"""drillbook: release checklists as code, with owners, expected results and rollbacks."""

from __future__ import annotations

__version__ = "0.1.0"
