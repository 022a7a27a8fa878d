"""KubeRay v1.7.0's RayService CRD (tests/schemas/kuberay/, Apache-2.0), for tests: its schema (the fixture
`rayservice_crd` installs it).

Strict: `additionalProperties: false` wherever the schema lists properties, so a field KubeRay does not
declare fails validation instead of being silently pruned by the API server.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from ray.serve.schema import ServeDeploySchema

RAYSERVICE_CRD = Path(__file__).parents[1] / "schemas" / "kuberay" / "ray.io_rayservices.yaml"


def _strict(schema: Any) -> Any:
    """The CRD schema with `additionalProperties: false` where it lists properties and keeps no unknowns."""
    if isinstance(schema, dict):
        strict = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            strict["additionalProperties"] = False
        return strict
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@cache
def crd() -> dict[str, Any]:
    # No skip: without KubeRay's schema this test must fail, not pass vacuously.
    assert RAYSERVICE_CRD.is_file(), f"KubeRay's RayService CRD is missing: {RAYSERVICE_CRD}"
    # The C loader when PyYAML has it: the file is 18,000 lines.
    return yaml.load(RAYSERVICE_CRD.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@cache
def strict_validator() -> jsonschema.Draft7Validator:
    [v1] = [version for version in crd()["spec"]["versions"] if version["name"] == "v1"]
    return jsonschema.Draft7Validator(_strict(v1["schema"]["openAPIV3Schema"]))


def assert_valid(obj: dict[str, Any]) -> None:
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in strict_validator().iter_errors(obj)
    ]
    assert not errors, "\n".join(errors)
    ServeDeploySchema.model_validate(yaml.safe_load(obj["spec"]["serveConfigV2"]))
