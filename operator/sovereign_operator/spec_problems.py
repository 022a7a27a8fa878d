"""A spec checked against its pydantic model, as `field.path: problem` strings (pure, shared by admission).

The CRD's schema is generated from the same models, so most of these are caught by the API server first;
the model also holds the cross-field rules (validators) that a structural schema cannot express.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError


def problems_with_spec_model(
    model: type[BaseModel],
    spec: Mapping[str, Any],
    replaced_pattern_errors: Collection[tuple[str, ...]] = (),
) -> list[str]:
    """Each validation error of `spec` (camelCase, as sent to the API) as `spec.<path>: <message>`.

    `replaced_pattern_errors`: field locations whose pattern errors the caller reports more clearly itself.
    """
    try:
        model.model_validate(dict(spec))
    except ValidationError as error:
        return [
            f"{_field_path(e['loc'])}: {_readable(e)}"
            for e in error.errors()
            if not (e["type"] == "string_pattern_mismatch" and tuple(e["loc"]) in replaced_pattern_errors)
        ]
    return []


def _field_path(loc: Iterable[int | str]) -> str:
    path = "spec"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _readable(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    return str(error["msg"]).removeprefix("Value error, ")
