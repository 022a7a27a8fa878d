"""The devstack's trace viewer: Phoenix (PyPI `arize-phoenix`), an OTLP-native viewer, run from its own venv.

`sovereign up` starts it unless `--trace-viewer none`, points the operator and the Ray head (whose workers
inherit it) at it with OTEL_EXPORTER_OTLP_ENDPOINT, and writes that variable and SOVEREIGN_TRACE_VIEWER_URL
to DIR/env. Phoenix is not a project dependency: it pulls ~850 MB whose pins would fight Ray's, so
`make viewer` installs it into `.venv-viewer` next to the project. Without it, `up` says so and goes on.

Air gap (Phoenix 20.26.1, checked with tests/airgap/egress_guard): with telemetry off alone, `phoenix serve`
still looks up github.com (phoenix.server.sandbox._download prefetches a CPython WASM sandbox binary) and
arizeai-433a7140.mintlify.app (the agent assistant's docs MCP server). PHOENIX_ALLOW_EXTERNAL_RESOURCES=false
stops both and the web UI's Google Fonts; PHOENIX_TELEMETRY_ENABLED=false stops the UI's Scarf.sh pixel and
FullStory. Under the guard, a start with PHOENIX_AIR_GAP_ENV made no outbound attempt.

Phoenix's OTLP/gRPC receiver cannot be turned off while ingesting and binds all interfaces ([::]) whatever
PHOENIX_HOST says; it gets a free port of its own so several devstacks do not collide on 4317.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

PHOENIX_ENV_VAR = "SOVEREIGN_PHOENIX"  # the phoenix executable to use, overriding the search
VIEWER_VENV = ".venv-viewer"  # what `make viewer` creates next to the project
PROJECT_ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "run `make viewer` (installs arize-phoenix into .venv-viewer), or set SOVEREIGN_PHOENIX"

# Every Phoenix setting that would make it, or the browser showing its UI, reach the internet: off.
PHOENIX_AIR_GAP_ENV = {
    "PHOENIX_TELEMETRY_ENABLED": "false",  # FullStory and the Scarf.sh pixel in the web UI
    "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",  # WASM download (github.com), docs MCP, web fonts
    "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",  # the LLM chat assistant and its docs MCP server
    "PHOENIX_ENABLE_MCP_SERVER": "false",  # the /mcp endpoint: nothing here needs it
    "PHOENIX_LOG_MIGRATIONS": "false",  # its first start would log every CREATE TABLE
}


def find_phoenix(environ: Mapping[str, str] | None = None, project_root: Path = PROJECT_ROOT) -> Path | None:
    """$SOVEREIGN_PHOENIX if set, else .venv-viewer/bin/phoenix next to the project, else `phoenix` on PATH.

    A SOVEREIGN_PHOENIX that names no executable gives None (the caller says so): it is never skipped over.
    """
    environ = os.environ if environ is None else environ
    chosen = environ.get(PHOENIX_ENV_VAR)
    if chosen:
        path = Path(chosen)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    beside = project_root / VIEWER_VENV / "bin" / "phoenix"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    on_path = shutil.which("phoenix", path=environ.get("PATH"))
    return Path(on_path) if on_path else None


def not_found_message(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    if environ.get(PHOENIX_ENV_VAR):
        return f"{PHOENIX_ENV_VAR}={environ[PHOENIX_ENV_VAR]} is not an executable; {INSTALL_HINT}"
    return f"Phoenix is not installed; {INSTALL_HINT}"


def trace_env(viewer_url: str | None) -> dict[str, str]:
    """What a component needs to export its spans to the viewer (the OTLP exporter appends /v1/traces)."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": viewer_url} if viewer_url else {}
