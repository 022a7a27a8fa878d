"""`sovereign dataset search`: the chunks of nations' datasets an analyst may read, through their gateway.

Calls `$SOVEREIGN_GATEWAY_URL/<nation>/v1/sovereign/search` with the analyst's bearer token (a token of that
nation's issuer: the gateway serves its own nation's users only). The gateway decides each dataset and the
owner's retriever each chunk; what comes back is marked with the least upper bound of the chunks' markings.
Exit codes: 0 found (or nothing matched), 3 denied (403), 1 any other error, with the gateway's message.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from sovereign.cli.output import OutputFormat, console, fail, print_json
from sovereign.domain.nations import gateway_route_prefix

DENIED_EXIT_CODE = 3
EXCERPT_CHARS = 80
TIMEOUT_SECONDS = 120.0

app = typer.Typer(help="Nations' datasets: search them as the policy allows.", no_args_is_help=True)


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


def _error_message(response: Any) -> str:
    try:
        error = response.json().get("error") or {}
        message = error.get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or f"the gateway answered HTTP {response.status_code}")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    dataset: Annotated[
        list[str], typer.Option("--dataset", "-d", help="A dataset, `<nation>/<name>` (repeatable, up to 8).")
    ],
    token: Annotated[
        str,
        typer.Option(
            envvar="SOVEREIGN_TOKEN", help="Bearer token of a user of --nation.", show_default=False
        ),
    ],
    nation: Annotated[
        str, typer.Option(envvar="SOVEREIGN_NATION", help="The nation whose gateway is asked (the token's).")
    ],
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=50, help="How many chunks.")] = 5,
    gateway_url: Annotated[
        str,
        typer.Option(
            envvar="SOVEREIGN_GATEWAY_URL", help="Ray Serve's HTTP base (`sovereign up` prints it)."
        ),
    ] = "",
    output: Annotated[OutputFormat, typer.Option("--output", "-o", help="text or json.")] = OutputFormat.text,
) -> None:
    """Search datasets as the token's user: the chunks the policy lets them read, best first."""
    import httpx

    if not gateway_url:
        fail("no gateway: set SOVEREIGN_GATEWAY_URL (e.g. `source .sovereign/env`) or pass --gateway-url")
    url = f"{gateway_url.rstrip('/')}{gateway_route_prefix(nation.strip())}/v1/sovereign/search"
    try:
        response = httpx.post(
            url,
            json={"datasets": dataset, "query": query, "top_k": top_k},
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as error:
        fail(f"cannot reach the gateway at {url}: {type(error).__name__}")
        raise  # unreachable: fail() exits
    if response.status_code == 403:
        fail(_error_message(response), code=DENIED_EXIT_CODE)
    if response.status_code != 200:
        fail(f"HTTP {response.status_code}: {_error_message(response)}")
    answer = response.json()
    if output is OutputFormat.json:
        print_json(answer)
        return
    marking = answer.get("marking") or {}
    releasable = ",".join(marking.get("releasableTo") or [])
    console.print(f"[bold]{marking.get('classification')}[/] REL TO {releasable}", highlight=False)
    table = Table("dataset", "document", "chunk", "score", "excerpt")
    for result in answer.get("results") or []:
        table.add_row(
            result["dataset"],
            result["documentId"],
            result["chunkId"],
            f"{result['score']:.3f}",
            _excerpt(result["text"]),
        )
    console.print(table)
    if not answer.get("results"):
        console.print("no chunk you may read matched")
