"""Render the chart with Helm's own engine (helm-python-sdk embeds Helm's Go library) into objects."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "sovereign"
RELEASE, NAMESPACE = "sov", "sovereign-system"
KUBERNETES_VERSION = "1.32.0"  # one of kubernetes-validate's shipped schema versions
# The least a user must set: the two required values.
REQUIRED_VALUES: dict[str, Any] = {
    "vault": {"address": "https://vault.vault.svc:8200", "auth": {"token": {"existingSecret": "vault-token"}}}
}


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's values merge: maps merge key by key, anything else is replaced."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def chart_defaults() -> dict[str, Any]:
    return yaml.safe_load((CHART_DIR / "values.yaml").read_text())


def render_manifests(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Template path → rendered text, as `helm template` would print them (NOTES.txt included)."""
    chart = helm_python.Chart.load(CHART_DIR)
    return chart.render(merged(REQUIRED_VALUES, values or {}), name=RELEASE, namespace=NAMESPACE)


def render_objects(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the templates render (not NOTES.txt), in template order."""
    objects = []
    for path, text in sorted(render_manifests(values).items()):
        if path.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def crd_objects() -> list[dict[str, Any]]:
    """The chart's crds/ (Helm installs them before the templates and never renders them)."""
    return [yaml.safe_load(path.read_text()) for path in sorted((CHART_DIR / "crds").glob("*.yaml"))]


def one(objects: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, (
        f"expected one {kind} *{name_suffix}, got {[o['metadata']['name'] for o in found]}"
    )
    return found[0]
