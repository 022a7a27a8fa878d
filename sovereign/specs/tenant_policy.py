"""The TenantPolicy: a nation's own Cedar rules, in its tenant namespace.

Checked at apply time (sovereign.policy.nation_rules): only `forbid`, or `permit` on the nation's own
resources, each policy with an `@id`, valid against the schema. Accepted rules join the policy bundle, whose
version the status shows.
"""

from __future__ import annotations

from pydantic import Field

from sovereign.specs.resource import CustomResourceDefinitionInfo, PrinterColumn, SpecModel


class TenantPolicySpec(SpecModel):
    """Cedar policies of the nation that owns the namespace."""

    description: str = Field("", description="What these rules are for, for people.")
    cedar: str = Field(min_length=1, description="Cedar policies, each with an @id annotation.")


TENANT_POLICY_CRD = CustomResourceDefinitionInfo(
    kind="TenantPolicy",
    plural="tenantpolicies",
    singular="tenantpolicy",
    scope="Namespaced",
    spec_model=TenantPolicySpec,
    description="A nation's own Cedar rules: forbid, or permit on the nation's own resources.",
    short_names=("tp",),
    printer_columns=(
        PrinterColumn("Policies", ".status.policies", type="integer"),
        PrinterColumn("Bundle", ".status.bundleVersion"),
        PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    ),
)
