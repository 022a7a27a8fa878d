"""Spec models of the platform's custom resources: the one source the CRD YAML is generated from."""

from sovereign.specs.dataset import DATASET_CRD, DataSetSpec
from sovereign.specs.model_deployment import MODEL_DEPLOYMENT_CRD, ModelDeploymentSpec
from sovereign.specs.resource import CustomResourceDefinitionInfo, PrinterColumn
from sovereign.specs.tenant import TENANT_CRD, TenantSpec
from sovereign.specs.tenant_policy import TENANT_POLICY_CRD, TenantPolicySpec

#: Every custom resource the platform serves; `sovereign crds generate` writes one CRD file for each.
CUSTOM_RESOURCES: tuple[CustomResourceDefinitionInfo, ...] = (
    TENANT_CRD,
    TENANT_POLICY_CRD,
    MODEL_DEPLOYMENT_CRD,
    DATASET_CRD,
)

__all__ = [
    "CUSTOM_RESOURCES",
    "DATASET_CRD",
    "MODEL_DEPLOYMENT_CRD",
    "TENANT_CRD",
    "TENANT_POLICY_CRD",
    "CustomResourceDefinitionInfo",
    "DataSetSpec",
    "ModelDeploymentSpec",
    "PrinterColumn",
    "TenantPolicySpec",
    "TenantSpec",
]
