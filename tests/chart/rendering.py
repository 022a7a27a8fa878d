"""Render the chart with Helm's own engine (helm-python-sdk embeds Helm's Go library) into objects."""

from __future__ import annotations

from typing import Any

import yaml
from sovereign_devstack import chart_rendering
from sovereign_devstack.chart_rendering import CHART_DIR as CHART_DIR  # the chart tests read these here
from sovereign_devstack.chart_rendering import ROOT as ROOT
from sovereign_devstack.chart_rendering import merged as merged

RELEASE, NAMESPACE = "sov", "sovereign-system"
KUBERNETES_VERSION = "1.32.0"  # one of kubernetes-validate's shipped schema versions
# The least a user must set: the two required values.
REQUIRED_VALUES: dict[str, Any] = {
    "vault": {"address": "https://vault.vault.svc:8200", "auth": {"token": {"existingSecret": "vault-token"}}}
}


def chart_defaults() -> dict[str, Any]:
    return yaml.safe_load((CHART_DIR / "values.yaml").read_text())


def render_manifests(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Template path → rendered text, as `helm template` would print them (NOTES.txt included)."""
    return chart_rendering.render_manifests(merged(REQUIRED_VALUES, values or {}), RELEASE, NAMESPACE)


def render_objects(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the templates render (not NOTES.txt), in template order."""
    return chart_rendering.manifest_objects(render_manifests(values))


def crd_objects() -> list[dict[str, Any]]:
    """The chart's crds/ (Helm installs them before the templates and never renders them)."""
    return [yaml.safe_load(path.read_text()) for path in sorted((CHART_DIR / "crds").glob("*.yaml"))]


def one(objects: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, (
        f"expected one {kind} *{name_suffix}, got {[o['metadata']['name'] for o in found]}"
    )
    return found[0]
