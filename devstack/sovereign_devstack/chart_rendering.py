"""The platform's Helm chart (charts/sovereign) rendered with Helm's own engine (helm-python-sdk embeds
Helm's Go library), as `helm template` renders it, into objects. Dev-only: it reads the chart from this
source tree, beside the devstack."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "sovereign"


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's values merge: maps merge key by key, anything else is replaced."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def render_manifests(values: dict[str, Any], release: str, namespace: str) -> dict[str, str]:
    """Template path → rendered text, as `helm template` would print them (NOTES.txt included)."""
    import helm_python  # imported here so that `sovereign status` needs no Helm engine

    chart = helm_python.Chart.load(CHART_DIR)
    return chart.render(values, name=release, namespace=namespace)


def manifest_objects(manifests: dict[str, str]) -> list[dict[str, Any]]:
    """Every object of rendered templates (not NOTES.txt), in template order."""
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def render_objects(values: dict[str, Any], release: str, namespace: str) -> list[dict[str, Any]]:
    return manifest_objects(render_manifests(values, release, namespace))
