"""CustomResourceDefinitions on the devstack API server, driven with kubectl and the kubernetes client."""

from __future__ import annotations

import json
import uuid

import kubernetes
import pytest

from tests.helpers import kubectl, wait_until
from tests.servers import KubeAPI


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _crd(group: str, *, status: bool = True, columns: bool = True) -> str:
    printer = (
        """
      additionalPrinterColumns:
        - {name: Size, type: integer, jsonPath: .spec.size}
        - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
        - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}"""
        if columns
        else ""
    )
    return f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: gadgets.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{kind: Gadget, plural: gadgets, singular: gadget, shortNames: [gdg]}}
  versions:
    - name: v1
      served: true
      storage: true
      {"subresources: {status: {}}" if status else ""}{printer}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: {{type: integer, minimum: 1, maximum: 10}}
                color: {{type: string, default: blue}}
            status:
              type: object
              x-kubernetes-preserve-unknown-fields: true
"""


@pytest.fixture
def gadgets(kube_api: KubeAPI) -> tuple[str, str]:
    """A fresh CRD group (served) and a fresh namespace for each test."""
    group, namespace = f"{_unique('g')}.example.com", _unique("crd")
    kubectl(kube_api, "apply", "-f", "-", input=_crd(group))
    kubectl(
        kube_api,
        "apply",
        "-f",
        "-",
        input=f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n",
    )
    kubectl(kube_api, "wait", "--for=condition=Established", f"crd/gadgets.{group}", "--timeout=20s")
    return group, namespace


def _gadget(group: str, namespace: str, name: str, spec: str) -> str:
    meta = f"metadata: {{name: {name}, namespace: {namespace}}}"
    return f"apiVersion: {group}/v1\nkind: Gadget\n{meta}\nspec: {spec}\n"


def test_crd_is_established_and_discoverable(kube_api: KubeAPI, gadgets: tuple[str, str]) -> None:
    group, _ = gadgets
    crd = json.loads(kubectl(kube_api, "get", "crd", f"gadgets.{group}", "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd["status"]["acceptedNames"]["shortNames"] == ["gdg"]
    resources = kubectl(kube_api, "api-resources", "--api-group", group).stdout
    assert "gadgets" in resources and "gdg" in resources and "Gadget" in resources


def test_apply_and_list_prints_the_printer_columns(kube_api: KubeAPI, gadgets: tuple[str, str]) -> None:
    group, ns = gadgets
    kubectl(kube_api, "apply", "-f", "-", input=_gadget(group, ns, "small", "{size: 2}"))
    kubectl(kube_api, "apply", "-f", "-", input=_gadget(group, ns, "large", "{size: 9}"))
    lines = kubectl(kube_api, "get", f"gadgets.{group}", "-n", ns).stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "READY", "AGE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["small"][1] == "2" and rows["large"][1] == "9"
    # Re-applying with a change patches the object in place.
    kubectl(kube_api, "apply", "-f", "-", input=_gadget(group, ns, "small", "{size: 3}"))
    assert (
        kubectl(kube_api, "get", f"gdg.{group}", "small", "-n", ns, "-o", "jsonpath={.spec.size}").stdout
        == "3"
    )
    described = kubectl(kube_api, "describe", f"gadgets.{group}", "small", "-n", ns).stdout
    assert "Size:" in described and "Color:  blue" in described
    out = kubectl(kube_api, "delete", f"gadgets.{group}", "small", "-n", ns).stdout
    assert f'gadget.{group} "small" deleted' in out
    missing = kubectl(kube_api, "get", f"gadgets.{group}", "small", "-n", ns, check=False)
    assert f'gadgets.{group} "small" not found' in missing.stderr


def test_invalid_object_is_rejected_with_the_field_path(kube_api: KubeAPI, gadgets: tuple[str, str]) -> None:
    group, ns = gadgets
    result = kubectl(kube_api, "apply", "-f", "-", input=_gadget(group, ns, "bad", "{size: 50}"), check=False)
    assert result.returncode != 0
    assert 'The Gadget "bad" is invalid: spec.size: Invalid value: 50' in result.stderr
    assert "less than or equal to 10" in result.stderr
    missing = kubectl(
        kube_api, "apply", "-f", "-", input=_gadget(group, ns, "bad", "{color: red}"), check=False
    )
    assert "spec.size: Required value" in missing.stderr


def test_defaults_are_applied_and_unknown_fields_pruned(kube_api: KubeAPI, gadgets: tuple[str, str]) -> None:
    group, ns = gadgets
    api = kubernetes.config.new_client_from_config(config_file=str(kube_api.kubeconfig))
    custom = kubernetes.client.CustomObjectsApi(api)
    body = {
        "apiVersion": f"{group}/v1",
        "kind": "Gadget",
        "metadata": {"name": "pruned"},
        "spec": {"size": 4, "unknown": {"x": 1}},
        "extra": True,
    }
    created = custom.create_namespaced_custom_object(group, "v1", ns, "gadgets", body)
    assert created["spec"] == {"size": 4, "color": "blue"}
    assert "extra" not in created
    assert created["metadata"]["generation"] == 1 and created["metadata"]["uid"]
    # kubectl validates strictly by default: the server refuses unknown fields instead of pruning them.
    strict = kubectl(
        kube_api, "apply", "-f", "-", input=_gadget(group, ns, "strict", "{size: 1, nope: 2}"), check=False
    )
    assert 'strict decoding error: unknown field "spec.nope"' in strict.stderr
    warned = kubectl(
        kube_api,
        "apply",
        "--validate=warn",
        "-f",
        "-",
        input=_gadget(group, ns, "strict", "{size: 1, nope: 2}"),
    )
    assert 'unknown field "spec.nope"' in warned.stderr
    # A field named with a control character (a header value cannot hold one): warned about, escaped.
    control = kubectl(
        kube_api,
        "apply",
        "--validate=warn",
        "-f",
        "-",
        input=_gadget(group, ns, "control", '{size: 2, "\\x1f": 1}'),
    )
    assert 'unknown field "spec.\\u001f"' in control.stderr
    size = kubectl(kube_api, "get", f"gadgets.{group}", "control", "-n", ns, "-o", "jsonpath={.spec.size}")
    assert size.stdout == "2"


def test_status_subresource_and_generation(kube_api: KubeAPI, gadgets: tuple[str, str]) -> None:
    group, ns = gadgets
    api = kubernetes.config.new_client_from_config(config_file=str(kube_api.kubeconfig))
    custom = kubernetes.client.CustomObjectsApi(api)
    body = {
        "apiVersion": f"{group}/v1",
        "kind": "Gadget",
        "metadata": {"name": "st"},
        "spec": {"size": 1},
        "status": {"ignored": True},
    }
    obj = custom.create_namespaced_custom_object(group, "v1", ns, "gadgets", body)
    assert "status" not in obj  # create ignores status when the status subresource is on
    # Status changes only through /status, and do not bump the generation.
    obj = custom.patch_namespaced_custom_object_status(
        group,
        "v1",
        ns,
        "gadgets",
        "st",
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}, "spec": {"size": 7}},
    )
    assert obj["spec"]["size"] == 1 and obj["status"]["conditions"][0]["status"] == "True"
    assert obj["metadata"]["generation"] == 1
    # The main resource ignores status changes; spec changes bump the generation.
    obj = custom.patch_namespaced_custom_object(
        group, "v1", ns, "gadgets", "st", {"spec": {"size": 2}, "status": {"conditions": []}}
    )
    assert obj["metadata"]["generation"] == 2 and obj["status"]["conditions"][0]["type"] == "Ready"
    # Metadata-only changes neither bump the generation nor touch status.
    rv = obj["metadata"]["resourceVersion"]
    obj = custom.patch_namespaced_custom_object(
        group, "v1", ns, "gadgets", "st", {"metadata": {"labels": {"a": "b"}}}
    )
    assert obj["metadata"]["generation"] == 2 and int(obj["metadata"]["resourceVersion"]) > int(rv)
    # A no-op patch keeps the resourceVersion.
    same = custom.patch_namespaced_custom_object(group, "v1", ns, "gadgets", "st", {"spec": {"size": 2}})
    assert same["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    table = kubectl(kube_api, "get", f"gadgets.{group}", "st", "-n", ns).stdout.splitlines()
    assert table[1].split()[:3] == ["st", "2", "True"]


def test_stale_update_conflicts(kube_api: KubeAPI, gadgets: tuple[str, str]) -> None:
    group, ns = gadgets
    api = kubernetes.config.new_client_from_config(config_file=str(kube_api.kubeconfig))
    custom = kubernetes.client.CustomObjectsApi(api)
    body = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "cc"}, "spec": {"size": 1}}
    first = custom.create_namespaced_custom_object(group, "v1", ns, "gadgets", body)
    custom.patch_namespaced_custom_object(group, "v1", ns, "gadgets", "cc", {"spec": {"size": 2}})
    stale = {**first, "spec": {"size": 3}}
    with pytest.raises(kubernetes.client.ApiException) as replaced:
        custom.replace_namespaced_custom_object(group, "v1", ns, "gadgets", "cc", stale)
    assert replaced.value.status == 409
    message = json.loads(replaced.value.body)["message"]
    assert message == (
        f'Operation cannot be fulfilled on gadgets.{group} "cc": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    with pytest.raises(kubernetes.client.ApiException) as patched:
        custom.patch_namespaced_custom_object(
            group,
            "v1",
            ns,
            "gadgets",
            "cc",
            {"metadata": {"resourceVersion": first["metadata"]["resourceVersion"]}, "spec": {"size": 4}},
        )
    assert patched.value.status == 409
    with pytest.raises(kubernetes.client.ApiException) as exists:
        custom.create_namespaced_custom_object(group, "v1", ns, "gadgets", body)
    assert exists.value.status == 409 and json.loads(exists.value.body)["reason"] == "AlreadyExists"


def test_strategic_merge_patch_on_custom_resources_is_415(
    kube_api: KubeAPI, gadgets: tuple[str, str]
) -> None:
    group, ns = gadgets
    kubectl(kube_api, "apply", "-f", "-", input=_gadget(group, ns, "p", "{size: 1}"))
    result = kubectl(
        kube_api,
        "patch",
        f"gadgets.{group}",
        "p",
        "-n",
        ns,
        "--type",
        "strategic",
        "-p",
        '{"spec": {"size": 2}}',
        check=False,
    )
    assert (
        result.returncode != 0 and "application/strategic-merge-patch+json is not supported" in result.stderr
    )
    kubectl(
        kube_api, "patch", f"gadgets.{group}", "p", "-n", ns, "--type", "merge", "-p", '{"spec": {"size": 5}}'
    )
    kubectl(
        kube_api,
        "patch",
        f"gadgets.{group}",
        "p",
        "-n",
        ns,
        "--type",
        "json",
        "-p",
        '[{"op": "replace", "path": "/spec/size", "value": 6}]',
    )
    assert (
        kubectl(kube_api, "get", f"gadgets.{group}", "p", "-n", ns, "-o", "jsonpath={.spec.size}").stdout
        == "6"
    )


def test_deleting_the_crd_stops_serving_and_deletes_objects(
    kube_api: KubeAPI, gadgets: tuple[str, str]
) -> None:
    group, ns = gadgets
    kubectl(kube_api, "apply", "-f", "-", input=_gadget(group, ns, "doomed", "{size: 1}"))
    kubectl(kube_api, "delete", "crd", f"gadgets.{group}", "--timeout=20s")
    wait_until(
        lambda: kubectl(kube_api, "get", "crd", f"gadgets.{group}", check=False).returncode != 0, "CRD gone"
    )
    result = kubectl(kube_api, "get", f"gadgets.{group}", "-n", ns, check=False)
    assert result.returncode != 0 and "the server doesn't have a resource type" in result.stderr
    # Re-creating the CRD serves an empty resource: the objects went with the old definition.
    kubectl(kube_api, "apply", "-f", "-", input=_crd(group, columns=False))
    wait_until(
        lambda: kubectl(kube_api, "get", f"gadgets.{group}", "-n", ns, check=False).returncode == 0,
        "served again",
    )
    listed = kubectl(kube_api, "get", f"gadgets.{group}", "-n", ns, "-o", "json").stdout
    assert json.loads(listed)["items"] == []


def test_cluster_scoped_multi_version_crd(kube_api: KubeAPI) -> None:
    group = f"{_unique('t')}.sovereign.ai"
    kubectl(
        kube_api,
        "apply",
        "-f",
        "-",
        input=f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: tenants.{group}}}
spec:
  group: {group}
  scope: Cluster
  names: {{kind: Tenant, plural: tenants, singular: tenant, categories: [sovereign]}}
  versions:
    - {{name: v1beta1, served: true, storage: false,
       schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}}}
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {{type: object, properties: {{nation: {{type: string, enum: [fra, deu]}}}}}}
""",
    )
    # As with kube-apiserver, custom objects can be applied once their CRD is established.
    kubectl(kube_api, "wait", "--for=condition=Established", f"crd/tenants.{group}", "--timeout=20s")
    kubectl(
        kube_api,
        "apply",
        "-f",
        "-",
        input=f"""
apiVersion: {group}/v1
kind: Tenant
metadata: {{name: acme}}
spec: {{nation: fra}}
""",
    )
    versions = json.loads(kubectl(kube_api, "get", "--raw", f"/apis/{group}").stdout)
    assert versions["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in versions["versions"]] == ["v1", "v1beta1"]
    assert kubectl(kube_api, "get", "sovereign", "-o", "name").stdout.split() == [f"tenant.{group}/acme"]
    old = kubectl(kube_api, "get", f"tenants.v1beta1.{group}", "acme", "-o", "jsonpath={.apiVersion}").stdout
    assert old == f"{group}/v1beta1"
    bad = kubectl(
        kube_api,
        "apply",
        "-f",
        "-",
        check=False,
        input=f"apiVersion: {group}/v1\nkind: Tenant\nmetadata: {{name: bad}}\nspec: {{nation: usa}}\n",
    )
    assert 'spec.nation: Unsupported value: "usa"' in bad.stderr
