"""The Namespace a nation's workloads live in: `tenant-<nation>`, labelled with the nation."""

from __future__ import annotations

from typing import Any

from sovereign.domain.nations import tenant_namespace
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.constants import NAMESPACE_NAME_LABEL, tenant_labels

# Pod Security Admission (k8s docs: /docs/concepts/security/pod-security-admission/): `baseline` refuses the
# pods that escape to the node (hostPath, privileged, host namespaces, added capabilities), through which one
# nation's pod would reach another's tokens on a shared node; the chart's admission policy refuses the
# operator a nation's namespace without it. The nations' Ray pods meet `restricted` (non-root, no privilege
# escalation, capabilities dropped, RuntimeDefault seccomp), which is warned on; it is not enforced, because
# pods KubeRay adds to a RayService are outside this builder.
POD_SECURITY_LABELS = {
    "pod-security.kubernetes.io/enforce": "baseline",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}


def build_namespace_for_tenant(spec: TenantSpec) -> dict[str, Any]:
    name = tenant_namespace(spec.nation)
    # The API server sets kubernetes.io/metadata.name itself; writing it too keeps the built object equal to
    # what is read back, so a reconciler comparing labels sees no drift.
    # k8s docs: /docs/concepts/services-networking/network-policies/#targeting-a-namespace-by-its-name
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {**tenant_labels(spec.nation), NAMESPACE_NAME_LABEL: name, **POD_SECURITY_LABELS},
        },
    }
