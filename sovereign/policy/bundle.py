"""The policy bundle: the schema, the base policies and each nation's accepted rules, under one version.

The version is a hash of all three, so a new bundle never reuses a decision cached under an older one. The
operator publishes the bundle as a ConfigMap (`to_configmap_data`); the gateway and the CLI read it back
(`from_configmap_data`), which refuses a torn or edited copy whose content no longer matches its version.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import cedarpy

from sovereign.policy.schema import POLICY_DIR, render_schema

BUNDLE_CONFIGMAP = "sovereign-policy-bundle"  # in the platform namespace
SCHEMA_KEY = "schema.cedarschema.json"
BASE_KEY = "base.cedar"
VERSION_KEY = "version"
_NATION_KEY = re.compile(r"^nation-([a-z]{3})\.cedar$")


class BundleError(ValueError):
    """A bundle that cannot be used: unreadable, inconsistent, or not matching the schema."""


@dataclass(frozen=True)
class PolicyBundle:
    schema: str
    base: str
    nation_rules: tuple[tuple[str, str], ...] = ()  # (nation, Cedar text), sorted by nation
    version: str = field(init=False)

    def __post_init__(self) -> None:
        rules = tuple(sorted((n, t) for n, t in self.nation_rules if t.strip()))
        object.__setattr__(self, "nation_rules", rules)
        digest = hashlib.sha256()
        for part in (self.schema, self.base, *(f"{n}\0{t}" for n, t in self.nation_rules)):
            digest.update(part.encode() + b"\0\0")
        object.__setattr__(self, "version", digest.hexdigest()[:16])

    @classmethod
    def load(cls, directory: Path = POLICY_DIR) -> PolicyBundle:
        """The base policies (every *.cedar of the folder) with the schema generated from the domain model."""
        base = "\n".join(p.read_text() for p in sorted(directory.glob("*.cedar")))
        return cls(schema=render_schema(), base=base)

    def with_nation_rules(self, rules: Mapping[str, str]) -> PolicyBundle:
        """This bundle's schema and base with `rules` (nation → its accepted, id-qualified Cedar text)."""
        return PolicyBundle(self.schema, self.base, tuple(rules.items()))

    @property
    def nations_with_rules(self) -> frozenset[str]:
        return frozenset(n for n, _ in self.nation_rules)

    def policies_for(self, nations: Iterable[str]) -> str:
        """The base policies plus the rules of `nations` only: a request is evaluated against nothing else."""
        wanted = set(nations)
        return "\n".join([self.base, *(t for n, t in self.nation_rules if n in wanted)])

    @property
    def policies(self) -> str:
        return self.policies_for(self.nations_with_rules)

    def validate(self) -> list[str]:
        result = cedarpy.validate_policies(self.policies, self.schema)
        return [] if result.validation_passed else [str(e) for e in result.errors]

    def to_configmap_data(self) -> dict[str, str]:
        return {
            SCHEMA_KEY: self.schema,
            BASE_KEY: self.base,
            VERSION_KEY: self.version,
            **{f"nation-{n.lower()}.cedar": t for n, t in self.nation_rules},
        }

    @classmethod
    def from_configmap_data(cls, data: Mapping[str, str]) -> PolicyBundle:
        if VERSION_KEY not in data:
            raise BundleError(f"policy bundle has no {VERSION_KEY!r}")
        version = data[VERSION_KEY]
        bundle = cls.from_edited_configmap_data({k: v for k, v in data.items() if k != VERSION_KEY})
        if bundle.version != version:
            raise BundleError(
                f"policy bundle content does not match its version {version!r} (content hashes to "
                f"{bundle.version!r}): refusing a torn or edited bundle"
            )
        return bundle

    @classmethod
    def from_edited_configmap_data(cls, data: Mapping[str, str]) -> PolicyBundle:
        """A bundle written by hand (no `version`: its version is computed), e.g. to verify it first."""
        try:
            schema, base = data[SCHEMA_KEY], data[BASE_KEY]
        except KeyError as missing:
            raise BundleError(f"policy bundle has no {missing.args[0]!r}") from None
        rules = []
        for key, text in data.items():
            match = _NATION_KEY.match(key)
            if match:
                rules.append((match.group(1).upper(), text))
            elif key not in (SCHEMA_KEY, BASE_KEY):
                raise BundleError(f"policy bundle has an unexpected entry {key!r}")
        return cls(schema, base, tuple(rules))
