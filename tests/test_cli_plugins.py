"""`sovereign` loads its plugins (entry point group `sovereign.cli`): with the devstack installed its
commands are there, and without it the product CLI works and says how to get them."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from sovereign.cli.main import DEVSTACK_COMMANDS, PLUGIN_GROUP, app, build_app, installed_plugins

runner = CliRunner()


def _help(app_under_test: object) -> str:
    result = runner.invoke(app_under_test, ["--help"])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_devstack_registers_its_commands_through_the_entry_point() -> None:
    from sovereign_devstack.cli import register

    assert register in installed_plugins()
    listed = _help(app)
    for name in (*DEVSTACK_COMMANDS, "access-matrix", "policy", "token"):
        assert f" {name} " in listed, name


def test_without_the_devstack_the_product_cli_works() -> None:
    product = build_app([])
    listed = _help(product)
    assert " policy " in listed and " access-matrix " in listed
    assert not [name for name in DEVSTACK_COMMANDS if f" {name} " in listed]  # hidden
    assert runner.invoke(product, ["policy", "--help"]).exit_code == 0


@pytest.mark.parametrize(
    "args",
    [["up"], ["up", "--state-dir", "x", "--no-ray"], ["down"], ["status", "--help"], ["vault", "unseal"]],
    ids=lambda args: " ".join(args),
)
def test_without_the_devstack_its_commands_say_how_to_get_it(args: list[str]) -> None:
    result = runner.invoke(build_app([]), args)
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert f"`sovereign {args[0]}` comes with the devstack" in said
    assert "sovereign-devstack" in said and "make install" in said


def test_the_group_is_the_one_the_devstack_names() -> None:
    from importlib.metadata import entry_points

    assert [e.value for e in entry_points(group=PLUGIN_GROUP)] == ["sovereign_devstack.cli:register"]
