"""Cedar's answer for one resource of a request, as the engine and the access matrix report it.

A denied resource's reason names the policies that forbid it, or, when no policy permits it, the clauses of
the base rule the request misses (`explain`, for people; the decision itself is Cedar's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cedarpy

from sovereign.domain.markings import Classification, Principal, Resource

_RANK = {level: level.rank for level in Classification}


@dataclass(frozen=True)
class Verdict:
    """Cedar's answer for one resource of a request: allowed, its deciding @ids, and why not."""

    allowed: bool
    deciding: tuple[str, ...]
    why: str = ""  # why a denied resource is denied; the reason is `<resource name>: <why>`
    error: str | None = None  # an evaluation error: the whole request is denied with it

    def reason(self, resource_name: str) -> str:
        return f"{resource_name}: {self.why}"


def verdict(
    user: Principal, resource: Resource, result: cedarpy.AuthzResult, ids: Mapping[str, str]
) -> Verdict:
    """One resource's result as the engine reports it (shared with the access matrix)."""
    errors = result.diagnostics.errors
    if errors:
        return Verdict(False, (), error=f"{resource.name}: policy evaluation error: {errors[0]}")
    deciding = tuple(ids.get(p, p) for p in result.diagnostics.reasons)
    if result.decision == cedarpy.Decision.Allow:
        return Verdict(True, deciding)
    if deciding:
        return Verdict(False, deciding, f"forbidden by {', '.join(sorted(deciding))}")
    return Verdict(False, (), f"no policy permits it ({explain(user, resource)})")


def explain(user: Principal, resource: Resource) -> str:
    """Which clauses of the rule the request misses, for people; the decision itself is Cedar's."""
    m = resource.markings
    missing = []
    if (
        user.nationality != m.owner
        and user.nationality not in m.releasable_to
        and "NATO" not in m.releasable_to
    ):
        missing.append(f"not releasable to {user.nationality}")
    if _RANK[user.clearance] < _RANK[m.classification]:
        missing.append(f"clearance {user.clearance} below {m.classification}")
    if not set(m.compartments) <= set(user.compartments):
        missing.append(f"missing compartments {sorted(set(m.compartments) - set(user.compartments))}")
    return "; ".join(missing) or "no matching permit"
