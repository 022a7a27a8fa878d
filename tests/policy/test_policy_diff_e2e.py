"""What a TenantPolicy would grant, seen before it is applied: `sovereign policy diff -f` run as a process
against the devstack, and `kubectl apply` printing the operator webhook's warnings.

Tenants fra, deu and pol (NATO SECRET) made Ready by the real operator, which also serves the webhooks;
France's analyst model (NATO SECRET, released to Germany) applied with kubectl.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sovereign_operator.admission_server import ADMISSION_CONFIGURATION

from sovereign.policy.bundle import BUNDLE_CONFIGMAP, PolicyBundle
from tests.helpers import kubectl, wait_until
from tests.operator.broken_policies import base_without_clearance_limit
from tests.operator.harness import OperatorProcess, Platform
from tests.operator.tenants import (
    apply_tenant,
    delete_tenant,
    model_deployment,
    tenant_policy_manifest,
    wait_ready,
)

SOVEREIGN = [str(Path(sys.executable).parent / "sovereign")]
NATIONS = ("fra", "deu", "pol")
ANALYST = model_deployment("fra", "analyst", {"classification": "NATO SECRET", "releasableTo": ["DEU"]})
POL_LIAISON = """\
@id("pol-liaison")
permit (principal, action, resource)
when { resource.owner == "FRA" && principal.nationality == "POL" && principal.groups.contains("liaison") };
"""
GAINS = (
    "POL gains fra/analyst (Model) at NATO SECRET, groups {liaison} [allowed by fra/pol-liaison/pol-liaison]"
)


def tenant_policy(name: str, cedar: str, namespace: str = "tenant-fra") -> str:
    return tenant_policy_manifest(name, cedar, namespace)


def sovereign(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SOVEREIGN, *args],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        timeout=60,
        cwd=Path(__file__).parents[2],
    )


def diff(platform: Platform, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return sovereign(platform.kube.env(), "policy", "diff", "-f", str(path), *args)


@pytest.fixture(scope="module")
def nations(platform: Platform, running_operator_with_webhook: OperatorProcess) -> Iterator[None]:
    for name in NATIONS:
        apply_tenant(platform.kube, name, name.upper(), clearance="NATO SECRET")
    try:
        for name in NATIONS:
            wait_ready(platform.kube, name, timeout=60)
        kubectl(platform.kube, "apply", "-f", "-", input=yaml.safe_dump(ANALYST))
        probe = tenant_policy("probe", '@id("x") forbid (principal, action, resource);', namespace="default")
        denied = f'admission webhook "validate-tenant-policy.{ADMISSION_CONFIGURATION}" denied the request'
        wait_until(
            lambda: denied in kubectl(platform.kube, "apply", "-f", "-", input=probe, check=False).stderr,
            "the webhook refuses a TenantPolicy outside a tenant namespace",
            timeout=30,
        )
        yield
    finally:
        for name in NATIONS:
            kubectl(platform.kube, "delete", "tenant", name, "--ignore-not-found", "--wait=false")
        for name in NATIONS:
            delete_tenant(platform.kube, name)


def test_diff_shows_what_a_rule_would_grant_before_it_is_applied(
    platform: Platform, nations: None, tmp_path: Path
) -> None:
    path = tmp_path / "pol-liaison.yaml"
    path.write_text(tenant_policy("pol-liaison", POL_LIAISON))

    text = diff(platform, path)
    assert text.returncode == 0, text.stderr
    assert "TenantPolicy tenant-fra/pol-liaison: grants 1 cell, removes 0" in text.stdout
    row = next(line for line in text.stdout.splitlines() if "fra/analyst" in line)
    for shown in (
        "+ gains",
        "POL",
        "at NATO SECRET, groups {liaison}",
        "allowed by fra/pol-liaison/pol-liaison",
    ):
        assert shown in row, text.stdout

    scripted = diff(platform, path, "--output", "json")
    assert scripted.returncode == 0, scripted.stderr
    result = json.loads(scripted.stdout)
    assert result["tenantPolicy"] == "tenant-fra/pol-liaison" and result["nation"] == "FRA"
    assert (result["gained"], result["lost"]) == (1, 0)
    (summary,) = result["summary"]
    assert summary["summary"] == GAINS.split(" [")[0]
    (cell,) = result["cells"]
    assert cell["principal"] == {
        "nation": "POL",
        "clearance": "NATO SECRET",
        "compartments": [],
        "groups": ["liaison"],
    }
    # Nothing was applied.
    assert (
        "NotFound"
        in kubectl(
            platform.kube, "get", "tenantpolicy", "pol-liaison", "-n", "tenant-fra", check=False
        ).stderr
    )


BAD_FILES = {
    "not YAML": ("key: [unclosed", "is not YAML"),
    "not a TenantPolicy": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "is not a TenantPolicy"),
    "outside a tenant namespace": (
        tenant_policy("stray", '@id("x") forbid (principal, action, resource);', namespace="default"),
        "a TenantPolicy must be in a tenant namespace (tenant-<nation> of a Tenant); default belongs to no "
        "Tenant",
    ),
    "rules the nation may not add": (
        tenant_policy("grab", '@id("take") permit (principal, action, resource);'),
        "TenantPolicy tenant-fra/grab would be refused:\n  - policy 'take': a nation may only forbid",
    ),
}


@pytest.mark.parametrize(("content", "message"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_file_is_refused_with_exit_2_saying_why(
    platform: Platform, nations: None, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(content)
    refused = diff(platform, path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert message in refused.stderr


@pytest.mark.process
def test_an_unreachable_cluster_exits_1_with_the_cause(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "gone", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "gone", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    path = tmp_path / "pol-liaison.yaml"
    path.write_text(tenant_policy("pol-liaison", POL_LIAISON))
    failed = sovereign({**os.environ, "KUBECONFIG": str(kubeconfig)}, "policy", "diff", "-f", str(path))
    assert failed.returncode == 1, failed.stderr
    assert "cannot read the catalogue from the cluster" in failed.stderr
    assert "127.0.0.1" in failed.stderr


def test_kubectl_apply_prints_what_the_rule_grants_and_an_edit_what_it_changes(
    platform: Platform, nations: None
) -> None:
    kube = platform.kube
    try:
        applied = kubectl(kube, "apply", "-f", "-", input=tenant_policy("pol-liaison", POL_LIAISON))
        assert "Warning: TenantPolicy tenant-fra/pol-liaison: grants 1 cell, removes 0\n" in applied.stderr
        assert f"Warning: {GAINS}\n" in applied.stderr

        edited = POL_LIAISON.replace('"POL"', '"DEU"').replace("principal.groups", "principal.compartments")
        updated = kubectl(kube, "apply", "-f", "-", input=tenant_policy("pol-liaison", edited))
        # Germany holds the model already (it is released to DEU): only Poland's liaison officers lose it,
        # with the compartment the edit names and without it (two kinds of user, so two cells).
        assert "Warning: TenantPolicy tenant-fra/pol-liaison: grants 0 cells, removes 2\n" in updated.stderr
        assert (
            "Warning: POL loses fra/analyst (Model) at NATO SECRET, groups {liaison} "
            "[no longer allowed by fra/pol-liaison/pol-liaison]\n"
        ) in updated.stderr

        unchanged = kubectl(kube, "apply", "-f", "-", input=tenant_policy("pol-liaison", edited + "\n"))
        assert "Warning: TenantPolicy tenant-fra/pol-liaison: changes no decision (" in unchanged.stderr
    finally:
        kubectl(kube, "delete", "tenantpolicy", "pol-liaison", "-n", "tenant-fra", "--ignore-not-found")


# Nine group names: more strings than a verification enumerates (principal_classes.MAX_ATOMS), so no
# bundle holding this rule can be proven. Refused at apply time, it never reaches the operator, which would
# otherwise keep every nation's bundle unpublished while it is live.
UNVERIFIABLE = (
    '@id("many-groups")\nforbid (principal, action, resource)\nwhen { resource.owner == "FRA" && '
    + " && ".join(f'principal.groups.contains("g{i}")' for i in range(9))
    + " };\n"
)


def test_a_rule_no_verification_can_prove_is_refused_by_diff_and_by_kubectl_apply(
    platform: Platform, nations: None, tmp_path: Path
) -> None:
    path = tmp_path / "many-groups.yaml"
    path.write_text(tenant_policy("many-groups", UNVERIFIABLE))
    refused = diff(platform, path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "TenantPolicy tenant-fra/many-groups would be refused" in refused.stderr
    assert "cannot be verified: 9 compartment and group strings" in refused.stderr

    applied = kubectl(platform.kube, "apply", "-f", str(path), check=False)
    assert applied.returncode != 0
    assert "the policy bundle would not be published: cannot be verified" in applied.stderr
    missing = kubectl(platform.kube, "get", "tenantpolicy", "many-groups", "-n", "tenant-fra", check=False)
    assert "NotFound" in missing.stderr


def test_a_model_the_published_policies_would_expose_below_its_level_is_refused_at_apply(
    platform: Platform, nations: None
) -> None:
    """A bundle is proven on the resources of its day; a model applied later is checked against it.

    The published bundle is replaced by hand (as the platform's admin could, or an operator from before the
    verification published it) with a base that lost its clearance limit: a NATO CONFIDENTIAL model would
    be open to France's unclassified users, so the webhook refuses it, naming them; an unclassified model,
    which nobody can read up to, is admitted.
    """
    kube = platform.kube
    saved = json.loads(
        kubectl(kube, "get", "configmap", BUNDLE_CONFIGMAP, "-n", "sovereign-system", "-o", "json").stdout
    )
    live = PolicyBundle.from_configmap_data(saved["data"])
    broken = PolicyBundle(live.schema, base_without_clearance_limit(live.base), live.nation_rules)
    crafted = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": BUNDLE_CONFIGMAP, "namespace": "sovereign-system"},
        "data": broken.to_configmap_data(),
    }
    planner = model_deployment("fra", "planner", {"classification": "NATO CONFIDENTIAL"})
    weather = model_deployment("fra", "weather", {"classification": "NATO UNCLASSIFIED"})
    try:
        kubectl(kube, "replace", "-f", "-", input=json.dumps(crafted))
        refused = kubectl(kube, "apply", "-f", "-", input=yaml.safe_dump(planner), check=False)
        assert refused.returncode != 0
        assert (
            "the published policies would not keep their invariants on this ModelDeployment" in refused.stderr
        )
        assert "breaks no-read-up: FRA user at NATO UNCLASSIFIED" in refused.stderr
        assert "allowed at NATO UNCLASSIFIED to a resource marked NATO CONFIDENTIAL" in refused.stderr
        missing = kubectl(kube, "get", "modeldeployment", "fra-planner", "-n", "tenant-fra", check=False)
        assert "NotFound" in missing.stderr

        kubectl(kube, "apply", "-f", "-", input=yaml.safe_dump(weather))
    finally:
        kubectl(kube, "delete", "modeldeployment", "fra-weather", "-n", "tenant-fra", "--ignore-not-found")
        restored = {**crafted, "data": saved["data"]}
        kubectl(kube, "replace", "-f", "-", input=json.dumps(restored))
