"""ValidatingAdmissionPolicies: CEL validations the API server itself evaluates, bound by
ValidatingAdmissionPolicyBindings (admissionregistration.k8s.io/v1).

# k8s docs: /docs/reference/access-authn-authz/validating-admission-policy/
CEL is evaluated with PyPI `cel-python` (celpy; regular expressions through RE2, as Kubernetes' CEL). What is
followed, each from the section of the page above that says so:
- "What Resources Make a Policy": a binding names its policy (spec.policyName); a binding whose policy does
  not exist enforces nothing. spec.validationActions: Deny refuses, Warn returns a warning, Audit is recorded
  by kube-apiserver's audit log only (ignored here).
- "Matching requests: matchConstraints": resourceRules (operations, apiGroups, apiVersions, resources with
  subresources, scope, resourceNames) and excludeResourceRules, namespaceSelector (for a Namespace itself,
  its own labels; cluster-scoped objects always match) and objectSelector; the binding's matchResources
  narrows further.
- "Matching requests: matchConditions": every condition must be true; an error applies failurePolicy.
- "Validation expression": variables `object` (null on DELETE), `oldObject` (null on CREATE), `request`
  (the AdmissionRequest, with userInfo), `params` (null: paramKind is not served here, such a policy fails
  closed), `namespaceObject` (null for cluster-scoped objects) and `variables` ("Variable composition").
- "Failure Policy": an expression that cannot be evaluated, or a binding that cannot be applied, refuses the
  request with failurePolicy Fail (the default) and is skipped with Ignore.
- A validation's `message` (else `failed expression: <expression>`), messageExpression and reason.
The refusal is kube-apiserver's (staging/src/k8s.io/apiserver/pkg/admission/plugin/policy/validating/
dispatcher.go): `<resource> "<name>" is forbidden: ValidatingAdmissionPolicy '<policy>' with binding
'<binding>' denied request: <message>`, reason Invalid and code 422 unless the validation names a reason.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any

import celpy
from celpy import celtypes

from sovereign_devstack.kube import errors, selectors
from sovereign_devstack.kube.admission_rules import matches_rule
from sovereign_devstack.kube.resource_types import ResourceType
from sovereign_devstack.kube.store import Store

GROUP = "admissionregistration.k8s.io"
POLICIES_KEY = (GROUP, "validatingadmissionpolicies")
BINDINGS_KEY = (GROUP, "validatingadmissionpolicybindings")
# k8s docs: "Failure Policy" / the API's reasonToCode: a validation may name one of these reasons.
REASON_CODES = {"Unauthorized": 401, "Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413}

_ENVIRONMENT = celpy.Environment()


class PolicyError(Exception):
    """An expression that cannot be compiled or evaluated (the policy's failurePolicy decides)."""


@functools.lru_cache(maxsize=512)
def _program(expression: str) -> Any:
    try:
        return _ENVIRONMENT.program(_ENVIRONMENT.compile(expression))
    except Exception as exc:  # celpy's parse errors share no base class besides Exception
        raise PolicyError(f"compilation failed: {str(exc).strip()}") from exc


def compile_errors(policy: dict[str, Any]) -> list[dict[str, str]]:
    """Field causes for every expression of `policy` that does not compile (the API server refuses such a
    policy: k8s docs "Validation expression", expressions are compiled when the policy is written)."""
    spec = policy.get("spec") or {}
    causes = []
    for field in ("matchConditions", "variables", "validations"):
        for index, entry in enumerate(spec.get(field) or []):
            for key in ("expression", "messageExpression"):
                if not entry.get(key):
                    continue
                try:
                    _program(entry[key])
                except PolicyError as exc:
                    causes.append(errors.field_cause(f"spec.{field}[{index}].{key}", f"Invalid value: {exc}"))
    return causes


def _evaluate(expression: str, activation: dict[str, Any]) -> Any:
    try:
        result = _program(expression).evaluate(activation)
    except PolicyError:
        raise
    except Exception as exc:  # CELEvalError and whatever celpy raises for a bad operand
        raise PolicyError(f"expression '{expression}' resulted in error: {exc}") from exc
    if isinstance(result, celpy.CELEvalError):
        raise PolicyError(f"expression '{expression}' resulted in error: {result}")
    return result


def _boolean(expression: str, activation: dict[str, Any]) -> bool:
    result = _evaluate(expression, activation)
    if not isinstance(result, celtypes.BoolType):
        raise PolicyError(f"expression '{expression}' must evaluate to bool")
    return bool(result)


# A property named like a CEL reserved word is also reachable as `__word__` (k8s docs: validating-admission-
# policy "Expression" escaping rules; recent CEL reads `.namespace` both ways). Only these are aliased: the
# character escapes (`-` → `__dash__`, ...) apply to typed properties, which this server cannot tell from
# map keys (labels, data) without the schema.
_RESERVED_WORDS = frozenset(
    [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ]
)


def _with_escaped_keywords(value: Any) -> Any:
    if isinstance(value, dict):
        escaped = {key: _with_escaped_keywords(item) for key, item in value.items()}
        for key in value.keys() & _RESERVED_WORDS:
            escaped.setdefault(f"__{key}__", escaped[key])
        return escaped
    if isinstance(value, list):
        return [_with_escaped_keywords(item) for item in value]
    return value


def _to_cel(value: Any) -> Any:
    return celpy.json_to_cel(_with_escaped_keywords(value))


@dataclass(frozen=True)
class Request:
    """One admission request, as the policies see it."""

    operation: str
    rt: ResourceType
    version: str
    subresource: str | None
    obj: dict[str, Any] | None
    old: dict[str, Any] | None
    user: dict[str, Any]
    dry_run: bool

    @property
    def metadata(self) -> dict[str, Any]:
        return (self.obj if self.obj is not None else self.old or {}).get("metadata") or {}

    def admission_request(self) -> dict[str, Any]:
        """The AdmissionRequest (k8s docs: extensible-admission-controllers "Request"), every field present
        as CEL sees kube's typed request (an unset string is "")."""
        gvk = {"group": self.rt.group, "version": self.version, "kind": self.rt.kind}
        gvr = {"group": self.rt.group, "version": self.version, "resource": self.rt.plural}
        user = {"username": "", "uid": "", "groups": [], "extra": {}, **self.user}
        return {
            "uid": str(uuid.uuid4()),
            "kind": gvk,
            "resource": gvr,
            "subResource": self.subresource or "",
            "requestKind": gvk,
            "requestResource": gvr,
            "requestSubResource": self.subresource or "",
            "name": self.metadata.get("name", ""),
            "namespace": self.metadata.get("namespace", "") if self.rt.namespaced else "",
            "operation": self.operation,
            "userInfo": user,
            "dryRun": self.dry_run,
            "options": {},
        }


def _rule_matches(rule: dict[str, Any], request: Request) -> bool:
    if not matches_rule(rule, request.operation, request.rt, request.version, request.subresource):
        return False
    names = rule.get("resourceNames") or []
    return not names or request.metadata.get("name", "") in names


def _selected(match: dict[str, Any], request: Request, namespace: dict[str, Any] | None) -> bool:
    """k8s docs: "Matching requests: matchConstraints" (also a binding's matchResources)."""
    if not any(_rule_matches(rule, request) for rule in match.get("resourceRules") or []):
        return False
    if any(_rule_matches(rule, request) for rule in match.get("excludeResourceRules") or []):
        return False
    by_namespace = selectors.match_label_selector_object(match.get("namespaceSelector"))
    if request.rt.key == ("", "namespaces"):
        if not by_namespace(request.metadata.get("labels") or {}):
            return False
    elif request.rt.namespaced and not by_namespace(
        ((namespace or {}).get("metadata") or {}).get("labels") or {}
    ):
        return False
    by_object = selectors.match_label_selector_object(match.get("objectSelector"))
    return any(
        by_object(((o or {}).get("metadata") or {}).get("labels") or {})
        for o in (request.obj, request.old)
        if o is not None
    )


@dataclass
class Denial:
    message: str
    reason: str = "Invalid"


class PolicyAdmission:
    def __init__(self, store: Store) -> None:
        self.store = store

    def review(self, request: Request, warnings: list[str] | None) -> None:
        """Evaluate every binding in force; raise the API server's refusal for the first denial."""
        namespace_name = request.metadata.get("namespace") if request.rt.namespaced else None
        namespace = self.store.get(("", "namespaces"), None, namespace_name) if namespace_name else None
        for binding in sorted(self.store.list(BINDINGS_KEY), key=lambda b: b["metadata"]["name"]):
            spec = binding.get("spec") or {}
            policy = self.store.get(POLICIES_KEY, None, spec.get("policyName") or "")
            if policy is None:
                continue  # k8s docs: a binding to a policy that does not exist enforces nothing
            policy_spec = policy.get("spec") or {}
            if not _selected(policy_spec.get("matchConstraints") or {}, request, namespace):
                continue
            if spec.get("matchResources") and not _selected(spec["matchResources"], request, namespace):
                continue
            try:
                denial = self._decide(policy_spec, request, namespace)
            except PolicyError as exc:
                if (policy_spec.get("failurePolicy") or "Fail") == "Ignore":
                    continue
                denial = Denial(str(exc))
            if denial is None:
                continue
            actions = spec.get("validationActions") or []
            policy_name, binding_name = policy["metadata"]["name"], binding["metadata"]["name"]
            if "Warn" in actions and warnings is not None:
                warnings.append(
                    f"Validation failed for ValidatingAdmissionPolicy '{policy_name}' with binding "
                    f"'{binding_name}': {denial.message}"
                )
            if "Deny" in actions:
                raise _refusal(request, policy_name, binding_name, denial)

    def _decide(
        self, spec: dict[str, Any], request: Request, namespace: dict[str, Any] | None
    ) -> Denial | None:
        if spec.get("paramKind"):
            raise PolicyError("policies with paramKind are not served by the devstack API server")
        activation: dict[str, Any] = {
            "object": _to_cel(request.obj),
            "oldObject": _to_cel(request.old),
            "request": _to_cel(request.admission_request()),
            "params": None,
            "namespaceObject": _to_cel(namespace),
        }
        # k8s docs: "Matching requests: matchConditions" — all must be true (an error: failurePolicy).
        for condition in spec.get("matchConditions") or []:
            if not _boolean(condition["expression"], activation):
                return None
        # k8s docs: "Variable composition" — each variable may use those before it; an error surfaces only
        # where the variable is used.
        variables: dict[Any, Any] = {}
        activation["variables"] = celtypes.MapType(variables)
        for variable in spec.get("variables") or []:
            try:
                value = _evaluate(variable["expression"], activation)
            except PolicyError as exc:
                value = celpy.CELEvalError(str(exc))
            variables[celtypes.StringType(variable["name"])] = value
            activation["variables"] = celtypes.MapType(variables)
        for validation in spec.get("validations") or []:
            expression = validation["expression"]
            if _boolean(expression, activation):
                continue
            return Denial(self._message(validation, activation), validation.get("reason") or "Invalid")
        return None

    @staticmethod
    def _message(validation: dict[str, Any], activation: dict[str, Any]) -> str:
        # k8s docs: "Message expression" — used when it yields a non-empty string, else `message`.
        if validation.get("messageExpression"):
            try:
                text = _evaluate(validation["messageExpression"], activation)
                if isinstance(text, str) and text.strip():
                    return str(text)
            except PolicyError:
                pass
        return validation.get("message") or f"failed expression: {validation['expression']}"


def _refusal(request: Request, policy: str, binding: str, denial: Denial) -> errors.StatusError:
    """admission.NewForbidden with the policy's reason and code (dispatcher.go), its message a cause too."""
    message = (
        f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: {denial.message}"
    )
    rt, name = request.rt, request.metadata.get("name", "")
    details: dict[str, Any] = {"name": name, "kind": rt.plural, "causes": [{"message": message}]}
    if rt.group:
        details["group"] = rt.group
    return errors.StatusError(
        REASON_CODES.get(denial.reason, 422),
        denial.reason,
        f'{errors.qualified(rt.group, rt.plural)} "{name}" is forbidden: {message}',
        details,
    )
