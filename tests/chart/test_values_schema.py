"""values.schema.json: good values pass and bad ones fail naming the field, both through jsonschema and
through Helm itself (Helm validates the merged values against the schema before rendering; Helm docs:
"Charts", "Schema Files")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import pytest
import yaml

from tests.chart.rendering import CHART_DIR, REQUIRED_VALUES, chart_defaults, merged, render_manifests

CASES = Path(__file__).parent / "values_cases"
GOOD: dict[str, dict[str, Any]] = yaml.safe_load((CASES / "good.yaml").read_text())
BAD: dict[str, dict[str, Any]] = yaml.safe_load((CASES / "bad.yaml").read_text())


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _user_values(values: dict[str, Any]) -> dict[str, Any]:
    return merged(merged(chart_defaults(), REQUIRED_VALUES), values)


def _pointer(error: jsonschema.ValidationError) -> str:
    return "".join(f"/{part}" for part in error.absolute_path)


def test_the_chart_defaults_alone_are_refused_naming_the_required_values(
    validator: jsonschema.Draft7Validator,
) -> None:
    fields = {_pointer(e) for e in validator.iter_errors(chart_defaults())}
    assert fields == {"/vault/address", "/vault/auth/token/existingSecret"}


@pytest.mark.parametrize("case", sorted(GOOD))
def test_good_values_pass_the_schema(case: str, validator: jsonschema.Draft7Validator) -> None:
    errors = [f"{_pointer(e)}: {e.message}" for e in validator.iter_errors(_user_values(GOOD[case]))]
    assert errors == []


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_values_fail_the_schema_at_their_field(case: str, validator: jsonschema.Draft7Validator) -> None:
    errors = list(validator.iter_errors(_user_values(BAD[case]["values"])))
    assert BAD[case]["field"] in {_pointer(e) for e in errors}, [
        f"{_pointer(e)}: {e.message}" for e in errors
    ]


@pytest.mark.parametrize("case", sorted(GOOD))
def test_helm_renders_good_values(case: str) -> None:
    assert render_manifests(GOOD[case])


@pytest.mark.parametrize("case", sorted(BAD))
def test_helm_refuses_bad_values_naming_the_field(case: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        render_manifests(BAD[case]["values"])
    # Helm v4 reports each violation as "at '<JSON pointer>': <reason>".
    assert f"at '{BAD[case]['field']}'" in str(refused.value)


def test_helm_names_a_mistyped_key() -> None:
    with pytest.raises(helm_python.HelmValuesError, match="imagePullSecret"):
        render_manifests(BAD["typo-at-top-level"]["values"])


def test_every_value_has_a_description_in_the_schema() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())

    def undocumented(node: dict[str, Any], path: str) -> list[str]:
        missing = []
        for key, child in (node.get("properties") or {}).items():
            if "description" not in child:
                missing.append(f"{path}/{key}")
            missing += undocumented(child, f"{path}/{key}")
        return missing

    assert undocumented(schema, "") == []
