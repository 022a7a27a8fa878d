"""Logs no key can read any more are moved aside, never deleted, so new logs start afresh."""

from __future__ import annotations

from pathlib import Path

from sovereign.audit import set_aside


def test_an_unreadable_directory_is_moved_beside_itself_with_its_content(tmp_path: Path) -> None:
    nation = tmp_path / "deu"
    (nation / "admin").mkdir(parents=True)
    (nation / "admin" / "00000001.log").write_text("sealed records\n")
    moved = set_aside(nation, "shredded")
    assert moved is not None and moved.parent == tmp_path and moved.name.startswith("deu.shredded-")
    assert (moved / "admin" / "00000001.log").read_text() == "sealed records\n"
    assert not nation.exists()


def test_nothing_to_move_is_not_an_error(tmp_path: Path) -> None:
    assert set_aside(tmp_path / "absent", "unreadable") is None
