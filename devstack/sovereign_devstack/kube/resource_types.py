"""What a served resource is (group, versions, names, scope, verbs, subresources) and the registry of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

# A table column for built-in kinds: header, type, a function of the object giving the cell.
BuiltinColumn = tuple[str, str, Callable[[dict[str, Any]], Any]]


@dataclass
class ResourceType:
    group: str
    versions: list[str]  # served versions, preferred (storage) first
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()  # "status", "token", "finalize"
    builtin_columns: list[BuiltinColumn] = field(default_factory=list)
    name_and_age: bool = True  # tables start with NAME and end with AGE (Events print their own columns)
    # CustomResourceDefinition-backed resources carry their per-version schema and printer columns.
    crd_name: str | None = None
    schemas: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    printer_columns: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def storage_version(self) -> str:
        return self.versions[0]

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def is_custom(self) -> bool:
        return self.crd_name is not None

    def api_version(self, version: str | None = None) -> str:
        version = version or self.storage_version
        return f"{self.group}/{version}" if self.group else version


class Registry:
    """Resource types by (group, plural); CRDs add and remove theirs at run time."""

    def __init__(self, types: Iterable[ResourceType] = ()) -> None:
        self._types: dict[tuple[str, str], ResourceType] = {}
        for rt in types:
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        self._types[rt.key] = rt

    def remove(self, key: tuple[str, str]) -> None:
        self._types.pop(key, None)

    def get(self, group: str, plural: str) -> ResourceType | None:
        return self._types.get((group, plural))

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        rt = self._types.get((group, plural))
        return rt if rt is not None and version in rt.versions else None

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._types.values() if rt.group == group and version in rt.versions]

    def groups(self) -> dict[str, list[str]]:
        """Group name -> served versions, preferred first (the core group "" included)."""
        result: dict[str, list[str]] = {}
        for rt in self._types.values():
            versions = result.setdefault(rt.group, [])
            for v in rt.versions:
                if v not in versions:
                    versions.append(v)
        return result
