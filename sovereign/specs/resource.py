"""What a custom resource is: its names, its spec model and its printer columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

GROUP = "sovereign.ai"
VERSION = "v1alpha1"


class SpecModel(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields refused (the CRD prunes them)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


@dataclass(frozen=True)
class PrinterColumn:
    """One `additionalPrinterColumns` entry: what `kubectl get` shows."""

    name: str
    json_path: str
    type: Literal["string", "integer", "number", "boolean", "date"] = "string"
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class CustomResourceDefinitionInfo:
    kind: str
    plural: str
    singular: str
    scope: Literal["Namespaced", "Cluster"]
    spec_model: type[SpecModel]
    description: str
    short_names: tuple[str, ...] = ()
    printer_columns: tuple[PrinterColumn, ...] = ()
    categories: tuple[str, ...] = ("sovereign",)
    group: str = GROUP
    version: str = VERSION
    extra_status_properties: dict[str, object] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"
