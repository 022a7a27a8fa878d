"""The Tenant webhook as tests/operator/operators/tenant_admission.py serves it under kopf, and what its
refusals read like (the fixture that starts it: `admission_webhook`, tests/fixtures/operator.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sovereign_operator.admission_server import ADMISSION_CONFIGURATION

from tests.helpers import kubectl
from tests.operator.harness import Platform

WEBHOOK_MODULE = Path(__file__).parent / "operators" / "tenant_admission.py"
WEBHOOK_NAME = f"validate-tenant.{ADMISSION_CONFIGURATION}"
DENIED = f'admission webhook "{WEBHOOK_NAME}" denied the request: '


def tenant_yaml(name: str, nation: str, extra_spec: str = "", clearance: str = "NATO SECRET") -> str:
    return (
        f"apiVersion: sovereign.ai/v1alpha1\nkind: Tenant\nmetadata: {{name: {name}}}\n"
        f"spec:\n  nation: {nation}\n  displayName: Test {nation}\n  clearance: {clearance}\n{extra_spec}"
    )


def apply_manifest(platform: Platform, manifest: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl apply` of `manifest` as the admin, its result whatever it is."""
    return kubectl(platform.kube, "apply", *args, "-f", "-", input=manifest, check=False)
