"""Which features each version of the service ships.

Every release of the demo is the same code tree; the version written to the release folder's
`VERSION` file picks the feature set here. That keeps the differences between releases real
(different queries, different tables, different latency) while the demo stays one folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Features:
    """The feature switches of one release."""

    # 1.1.0: PATCH writes who changed what to an `audit` table; /admin/orders/{id}/audit reads it.
    audit_trail: bool = False
    # 1.2.0: the admin list is enriched with customer profiles, one lookup per row (N+1).
    admin_enrichment: bool = False

    def names(self) -> list[str]:
        """The names of the switched-on features, for /version and the start-up log line."""
        return [name for name, on in vars(self).items() if on]


# Ordered oldest first. A version between two entries gets the newest entry at or below it.
RELEASES: dict[tuple[int, int, int], Features] = {
    (1, 0, 0): Features(),
    (1, 1, 0): Features(audit_trail=True),
    (1, 2, 0): Features(audit_trail=True, admin_enrichment=True),
}

BASE = RELEASES[(1, 0, 0)]

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def features_for(version: str) -> Features:
    """The feature set of a version: the newest known release at or below it.

    A pre-release (`1.2.0-rc.1`) sorts below its release, as in semver, so it gets the features
    of the release before. Versions that do not parse, or sort below 1.0.0, get the base set.
    """
    match = _VERSION.match(version.strip())
    if not match:
        return BASE
    key = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
    prerelease = match.group(4) is not None
    chosen = BASE
    for release, features in RELEASES.items():
        if release < key or (release == key and not prerelease):
            chosen = features
    return chosen
