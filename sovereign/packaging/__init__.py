"""Packaging for disconnected sites: the chart archive and the offline bundle (`sovereign bundle`)."""

from sovereign.packaging.bundle import (
    BundleError,
    BundleManifest,
    ModelManifest,
    create_bundle,
    parse_image_options,
    planned_bytes,
)
from sovereign.packaging.chart_archive import ChartError, package_chart
from sovereign.packaging.verify import Problem, VerifyReport, verify_bundle

__all__ = [
    "BundleError",
    "BundleManifest",
    "ChartError",
    "ModelManifest",
    "Problem",
    "VerifyReport",
    "create_bundle",
    "package_chart",
    "parse_image_options",
    "planned_bytes",
    "verify_bundle",
]
