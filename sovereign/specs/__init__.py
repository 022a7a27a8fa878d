"""Spec models of the platform's custom resources: the one source the CRD YAML is generated from."""

from sovereign.specs.resource import CustomResourceDefinitionInfo, PrinterColumn
from sovereign.specs.tenant import TENANT_CRD, TenantSpec

#: Every custom resource the platform serves; `sovereign crds generate` writes one CRD file for each.
CUSTOM_RESOURCES: tuple[CustomResourceDefinitionInfo, ...] = (TENANT_CRD,)

__all__ = ["CUSTOM_RESOURCES", "TENANT_CRD", "CustomResourceDefinitionInfo", "PrinterColumn", "TenantSpec"]
