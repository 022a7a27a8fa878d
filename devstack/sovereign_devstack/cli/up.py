"""`sovereign up / down`: run the platform locally on the devstack, or point it at a real cluster.

These commands (with `status`, `vault` and `model`) are the devstack's: `sovereign` loads them through the
entry point group `sovereign.cli` (sovereign_devstack.cli.register) when the sovereign-devstack package is
installed.
"""

from __future__ import annotations

import enum
import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from sovereign.cli.envfile import write_env_file
from sovereign.cli.output import OutputFormat, console, errors, fail, print_json
from sovereign.clients.kubernetes import apply_object, load_api_client, server_version
from sovereign.clients.vault import vault_client
from sovereign.domain.nations import nation_folder, nation_of_namespace
from sovereign.platform_setup import (
    create_operator_token,
    install_crds,
    install_operator_vault_policy,
    prepare_vault,
)
from sovereign.tenant_readiness import print_tenants, wait_for_models_ready, wait_for_tenants_ready
from sovereign_devstack.cli.demo_check import (
    DATASETS_TIMEOUT,
    GroundedDemo,
    example_datasets,
    print_demo_calls,
    print_grounded_demo,
    print_how_to_call,
    run_demo_calls,
    run_grounded_demo,
    wait_for_datasets_ready,
)

StateDir = Annotated[
    Path, typer.Option("--state-dir", help="Where pid files, logs, env and kubeconfig live.")
]
Output = Annotated[OutputFormat, typer.Option("--output", "-o", help="text for people, json for scripts.")]
DEFAULT_STATE_DIR = Path(".sovereign")


class TraceViewer(enum.StrEnum):
    phoenix = "phoenix"
    none = "none"


def up(
    state_dir: StateDir = DEFAULT_STATE_DIR,
    examples: Annotated[bool, typer.Option(help="Apply the example nations from --examples-dir.")] = True,
    examples_dir: Annotated[Path, typer.Option(help="Manifests applied when --examples is on.")] = Path(
        "examples"
    ),
    external: Annotated[
        bool,
        typer.Option(help="Use the cluster ($KUBECONFIG) and Vault ($VAULT_ADDR, $VAULT_TOKEN) already set."),
    ] = False,
    ready_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the example Tenants to become Ready.")
    ] = 120.0,
    ray: Annotated[
        bool, typer.Option(help="Start a local Ray cluster for the nations' gateways and models (local-ray).")
    ] = True,
    models_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the example models to become Ready.")
    ] = 300.0,
    trace_viewer: Annotated[
        TraceViewer,
        typer.Option(help="A local trace viewer every component sends spans to (phoenix: `make viewer`)."),
    ] = TraceViewer.phoenix,
    output: Output = OutputFormat.text,
) -> None:
    """Start the local control plane (Kubernetes API + Vault) and the operator, and install the platform."""
    progress_console = errors if output is OutputFormat.json else console

    def progress(message: str) -> None:
        progress_console.print(f"[green]✓[/] {message}")

    state_dir = state_dir.resolve()
    state = _external_state(state_dir) if external else _start_devstack(state_dir, progress)
    try:
        # First: Ray and the operator get its OTLP endpoint when they start.
        if trace_viewer is TraceViewer.phoenix and not external:
            state = _start_trace_viewer(state_dir, state, progress, progress_console)
        if ray and not external:
            from sovereign_devstack.stack import start_local_ray

            state = start_local_ray(state_dir, state, progress)
        env_path = write_env_file(state_dir / "env", _platform_env(state, state_dir))
        api = load_api_client(state.kubeconfig)
        progress(f"Kubernetes {server_version(api)}")
        install_crds(api, progress)
        vault = vault_client(state.vault_addr, state.vault_token, verify=state.vault_cacert)
        pem_keys = [state.service_account_certificate] if state.service_account_certificate else None
        reviewer_jwt = None
        if not external:  # a site's own Vault admin sets up its reviewer; the devstack does it here
            from sovereign_devstack.token_reviewer import ensure_token_reviewer

            reviewer_jwt = ensure_token_reviewer(api)
        prepare_vault(
            vault,
            state.kube_url,
            pem_keys,
            progress,
            kubernetes_ca_cert=_kube_ca_pem(api),
            token_reviewer_jwt=reviewer_jwt,
        )
        install_operator_vault_policy(vault)
        progress("Vault: operator policy sovereign-operator written")
        if not external:  # with --external the operator runs in the cluster (Helm), not here
            from sovereign_devstack.stack import start_operator

            state = start_operator(state_dir, state, lambda: create_operator_token(vault), progress)
        applied, demo_calls = [], []
        grounded: GroundedDemo | None = None
        datasets_not_ready: list[str] = []
        if examples:
            tenants, namespaced = _example_manifests(examples_dir)
            applied = _apply_manifests(api, tenants, progress)
            if tenants and not external:
                names = [m["metadata"]["name"] for m in tenants]
                wait_for_tenants_ready(api, names, ready_timeout, progress)
            # Models and policies live in the namespaces the operator makes for the Tenants.
            _fill_example_models(namespaced, state_dir / "models", progress)
            if not external:  # in-cluster, the sources are on each nation's data volume, put there by you
                from sovereign_devstack.stack import SOURCES_DIR

                _fill_example_datasets(namespaced, examples_dir, state_dir / SOURCES_DIR)
            applied += _apply_manifests(api, namespaced, progress)
            models = [
                (m["metadata"]["namespace"], m["metadata"]["name"])
                for m in namespaced
                if m.get("kind") == "ModelDeployment"
            ]
            if models and state.gateway_url:
                progress(f"waiting for {len(models)} example models (Ray Serve deploys them)…")
                wait_for_models_ready(api, models, models_timeout, progress)
                demo_calls = run_demo_calls(api, state.gateway_url, state.vault_addr, state.vault_cacert)
                datasets = example_datasets(namespaced)
                if datasets:
                    progress(f"waiting for {len(datasets)} example datasets (ingested on the nations' Ray)…")
                    datasets_not_ready = wait_for_datasets_ready(api, datasets, DATASETS_TIMEOUT, progress)
                    grounded = GroundedDemo([], 0, "-", "", [])
                    if not datasets_not_ready:
                        grounded = run_grounded_demo(
                            api,
                            state.gateway_url,
                            state.vault_addr,
                            datasets,
                            state.vault_cacert,
                        )
    except Exception as error:  # whatever went wrong, leave nothing half-made behind
        if not external:
            from sovereign_devstack.stack import stop_devstack

            stop_devstack(state_dir)
        fail(f"platform setup failed: {error}")

    summary = {
        "stateDir": str(state_dir),
        "env": str(env_path),
        "kubeconfig": state.kubeconfig,
        "kubernetes": state.kube_url,
        "vault": state.vault_addr,
        "external": state.external,
        "applied": applied,
        "gatewayUrl": state.gateway_url,
        "traceViewerUrl": state.trace_viewer_url,
        "demoCalls": [
            {"caller": c.caller, "endpoint": c.endpoint, "status": c.status, "marking": c.marking}
            for c in demo_calls
        ],
        "groundedDemo": None
        if grounded is None
        else {
            "datasets": grounded.datasets,
            "status": grounded.status,
            "marking": grounded.marking,
            "sources": grounded.sources,
            "notReady": datasets_not_ready,
        },
    }
    if output is OutputFormat.json:
        print_json(summary)
        return
    if applied:
        print_tenants(state.kubeconfig, console)
    if demo_calls:
        console.print("\n[bold]Three analysts call the gateways[/] (real tokens, policy and markings):")
        print_demo_calls(demo_calls, console)
    if grounded is not None:
        print_grounded_demo(grounded, datasets_not_ready, console)
    if state.gateway_url:
        print_how_to_call(state.gateway_url, str(env_path), console)
    console.print("\n[bold]The platform is up.[/] Try:")
    console.print(f"  source {env_path}")
    console.print("  kubectl get tenants")
    console.print("  kubectl describe tenant fra")
    console.print("  kubectl get modeldeployments,tenantpolicies -A")
    console.print("  sovereign access-matrix")
    for nation, groups in (("DEU", ""), ("EST", ""), ("EST", " --group liaison")):
        console.print(
            "  sovereign policy check --model fra/analyst --token "
            f"\"$(sovereign token issue --nation {nation} --clearance 'NATO RESTRICTED'{groups})\"",
            soft_wrap=True,
        )
    console.print("  sovereign keys rotate --nation FRA")
    console.print("  kubectl get events")
    console.print(
        '  curl -s --cacert "$VAULT_CACERT" -H "X-Vault-Token: $VAULT_TOKEN" $VAULT_ADDR/v1/sys/mounts',
        soft_wrap=True,
    )
    # RBAC is enforced: what a nation's administrator may do, asked as the admin impersonating one.
    as_fra_admin = "--as alice --as-group fra-platform-admins"
    console.print(f"  kubectl auth can-i --list -n tenant-fra {as_fra_admin}", soft_wrap=True)
    console.print(f"  kubectl auth can-i get modeldeployments -n tenant-deu {as_fra_admin}", soft_wrap=True)
    if state.trace_viewer_url:
        console.print(f"  open {state.trace_viewer_url}   # traces (Phoenix): README, Reading traces")
    elif trace_viewer is TraceViewer.phoenix and not external:
        console.print("  make viewer   # then `sovereign up` again: a local trace viewer (Phoenix)")
    console.print(f"  sovereign status --state-dir {state_dir}")
    console.print(f"  sovereign down --state-dir {state_dir}")


def down(state_dir: StateDir = DEFAULT_STATE_DIR, output: Output = OutputFormat.text) -> None:
    """Stop exactly the processes `sovereign up` started from this state dir."""
    from sovereign_devstack.stack import stop_devstack

    stopped = stop_devstack(state_dir.resolve())
    if output is OutputFormat.json:
        print_json({"stopped": stopped})
    elif stopped:
        console.print(f"stopped: {', '.join(stopped)}")
    else:
        console.print(f"nothing running from {state_dir}")


def _start_devstack(state_dir: Path, progress: Any) -> Any:
    from sovereign_devstack.processes import ServiceStartError
    from sovereign_devstack.stack import start_devstack

    try:
        return start_devstack(state_dir, progress)
    except ServiceStartError as error:
        fail(str(error))


def _start_trace_viewer(state_dir: Path, state: Any, progress: Any, progress_console: Any) -> Any:
    """Phoenix as the devstack's trace viewer; without it installed, say how to get it and go on."""
    from sovereign_devstack.processes import ServiceStartError
    from sovereign_devstack.stack import start_trace_viewer
    from sovereign_devstack.trace_viewer import find_phoenix, not_found_message

    executable = find_phoenix()
    if executable is None:
        progress_console.print(
            f"[yellow]![/] no trace viewer: {not_found_message()}. Going on without one: "
            "components export no spans (or use --trace-viewer none to skip this check)."
        )
        return state
    try:
        return start_trace_viewer(state_dir, state, executable, progress)
    except ServiceStartError as error:
        raise RuntimeError(f"{error}\n(start without a trace viewer: --trace-viewer none)") from error


def _external_state(state_dir: Path) -> Any:
    from sovereign_devstack.stack import DevstackState, save_state

    missing = [name for name in ("VAULT_ADDR", "VAULT_TOKEN") if not os.environ.get(name)]
    if missing:
        fail(f"--external needs {', '.join(missing)} in the environment")
    kubeconfig = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
    api = load_api_client(kubeconfig)
    state = DevstackState(
        external=True,
        kube_url=api.configuration.host,
        kubeconfig=kubeconfig,
        vault_addr=os.environ["VAULT_ADDR"],
        vault_token=os.environ["VAULT_TOKEN"],
        vault_cacert=os.environ.get("VAULT_CACERT") or None,
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    save_state(state_dir, state)
    return state


def _platform_env(state: Any, state_dir: Path) -> dict[str, str]:
    return {
        "KUBECONFIG": state.kubeconfig,
        "VAULT_ADDR": state.vault_addr,
        "VAULT_TOKEN": state.vault_token,
        # The CA Vault's TLS certificate is verified with (every Vault client reads it, as Vault's CLI does).
        **({"VAULT_CACERT": state.vault_cacert} if getattr(state, "vault_cacert", None) else {}),
        "SOVEREIGN_STATE_DIR": str(state_dir),
        # Ray Serve's HTTP base: a nation's OpenAI endpoint is $SOVEREIGN_GATEWAY_URL/<nation>/v1.
        **({"SOVEREIGN_GATEWAY_URL": state.gateway_url} if getattr(state, "gateway_url", None) else {}),
        # The trace viewer (Phoenix): its UI, and OTLP/HTTP for the CLI's own spans.
        **(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": viewer, "SOVEREIGN_TRACE_VIEWER_URL": viewer}
            if (viewer := getattr(state, "trace_viewer_url", None))
            else {}
        ),
        # The local Ray node's Prometheus metrics (token usage, request durations, policy decisions).
        **(
            {"SOVEREIGN_RAY_METRICS_URL": state.ray_metrics_url}
            if getattr(state, "ray_metrics_url", None)
            else {}
        ),
    }


def _example_manifests(examples_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The example Tenants, and everything else (which needs the Tenants' namespaces)."""
    if not examples_dir.is_dir():
        raise ValueError(f"examples directory {examples_dir} does not exist (use --no-examples)")
    tenants, others = [], []
    for path in sorted(examples_dir.rglob("*.yaml")):
        for manifest in yaml.safe_load_all(path.read_text()):
            if manifest:
                (tenants if manifest.get("kind") == "Tenant" else others).append(manifest)
    return tenants, others


EXAMPLE_MODEL_ANNOTATION = "sovereign.ai/example-model"


def _fill_example_models(manifests: list[dict[str, Any]], models_dir: Path, progress: Any) -> None:
    """Build the local checkpoints the example ModelDeployments name, and point them at the files."""
    from sovereign_devstack.tiny_model import build_tiny_llama, copy_minilm

    builders = {"tiny-llama": build_tiny_llama, "minilm": copy_minilm}
    built: dict[str, dict[str, str]] = {}
    for manifest in manifests:
        wanted = ((manifest.get("metadata") or {}).get("annotations") or {}).get(EXAMPLE_MODEL_ANNOTATION)
        if wanted is None:
            continue
        if wanted not in builders:
            raise ValueError(f"{EXAMPLE_MODEL_ANNOTATION}: {wanted!r} is none of {sorted(builders)}")
        directory = models_dir / wanted
        if wanted not in built:
            built[wanted] = builders[wanted](directory)
            progress(f"model {wanted} ready in {directory} ({len(built[wanted])} files, sha256 listed)")
        manifest["spec"]["source"] = str(directory)
        manifest["spec"]["sha256"] = built[wanted]


EXAMPLE_DATASET_ANNOTATION = "sovereign.ai/example-dataset"


def _fill_example_datasets(manifests: list[dict[str, Any]], examples_dir: Path, sources_dir: Path) -> None:
    """Copy each example DataSet's corpus (in the examples directory) into its nation's data root,
    `<sources_dir>/<nation>/<corpus name>`, and point its `source` there (relative to that root): a nation
    reads documents only under its own root."""
    for manifest in manifests:
        corpus = ((manifest.get("metadata") or {}).get("annotations") or {}).get(EXAMPLE_DATASET_ANNOTATION)
        if corpus is None:
            continue
        origin = (examples_dir / corpus).resolve()
        if not origin.is_dir():
            raise ValueError(f"{EXAMPLE_DATASET_ANNOTATION}: {corpus!r} is no directory in {examples_dir}")
        namespace = str(manifest["metadata"]["namespace"])
        nation_dir = nation_folder(nation_of_namespace(namespace) or namespace)
        target = sources_dir / nation_dir / origin.name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(origin, target)
        manifest["spec"]["source"] = origin.name


def _apply_manifests(api: Any, manifests: list[dict[str, Any]], progress: Any) -> list[str]:
    applied = []
    for manifest in manifests:
        apply_object(api, manifest)
        applied.append(f"{manifest['kind']}/{manifest['metadata']['name']}")
    if applied:
        progress(f"applied {', '.join(applied)}")
    return applied


def _kube_ca_pem(api: Any) -> str | None:
    """The CA (PEM) the kubeconfig trusts for the API server, for Vault to verify it with; None: none set."""
    ca_file = api.configuration.ssl_ca_cert
    return Path(ca_file).read_text() if ca_file else None
