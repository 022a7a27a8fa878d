"""Weight integrity: every listed file matches its digest, nothing is missing, no file is unlisted."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
from sovereign_serving.integrity import IntegrityError, sha256_of, verify_model_files

from tests.serving.engines.models import LocalModel


@pytest.fixture
def copy(tiny_llama: LocalModel, tmp_path: Path) -> LocalModel:
    """A copy of the tiny model that a test may tamper with."""
    target = tmp_path / "model"
    shutil.copytree(tiny_llama.source, target)
    return LocalModel(target, dict(tiny_llama.sha256))


def test_an_untouched_model_passes(copy: LocalModel) -> None:
    verify_model_files(copy.source, copy.sha256)
    verify_model_files(str(copy.source), copy.sha256)


def test_one_flipped_byte_names_the_file(copy: LocalModel) -> None:
    weights = copy.source / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"'model\.safetensors'.*sha256 is [0-9a-f]{64}") as caught:
        verify_model_files(copy.source, copy.sha256)
    assert caught.value.path == "model.safetensors"


def test_a_missing_file_names_the_file(copy: LocalModel) -> None:
    (copy.source / "tokenizer.json").unlink()
    with pytest.raises(IntegrityError, match=r"'tokenizer\.json'.*missing"):
        verify_model_files(copy.source, copy.sha256)


def test_an_unlisted_weight_file_is_refused(copy: LocalModel) -> None:
    (copy.source / "extra").mkdir()
    (copy.source / "extra" / "adapter.bin").write_bytes(b"weights nobody vouched for")
    with pytest.raises(IntegrityError, match=r"'extra/adapter\.bin'.*weight file is not pinned"):
        verify_model_files(copy.source, copy.sha256)


@pytest.mark.parametrize(
    "name", ["modeling_llama.py", "tokenizer_config.json.bak", ".hidden", "README.md", "sub/custom.json"]
)
def test_any_unlisted_file_is_refused_and_named(copy: LocalModel, name: str) -> None:
    (copy.source / name).parent.mkdir(exist_ok=True)
    (copy.source / name).write_text("nobody vouched for this")
    with pytest.raises(IntegrityError, match="not pinned in sha256") as caught:
        verify_model_files(copy.source, copy.sha256)
    assert caught.value.path == name
    verify_model_files(copy.source, {**copy.sha256, name: sha256_of(copy.source / name)})  # pinned: passes


def test_a_link_to_a_directory_is_refused(copy: LocalModel, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (copy.source / "linked").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(IntegrityError, match="'linked'.*link to a directory"):
        verify_model_files(copy.source, copy.sha256)


@pytest.mark.parametrize(
    "path", ["../outside.json", "/etc/passwd", "a/../../b"], ids=["dotdot", "absolute", "nested"]
)
def test_a_path_escaping_the_source_is_refused(copy: LocalModel, path: str) -> None:
    with pytest.raises(IntegrityError, match="escapes"):
        verify_model_files(copy.source, {**copy.sha256, path: "0" * 64})


def test_the_first_failing_file_in_path_order_is_named(copy: LocalModel) -> None:
    (copy.source / "config.json").write_text("{}")
    (copy.source / "tokenizer.json").write_text("{}")
    with pytest.raises(IntegrityError, match="'config.json'"):
        verify_model_files(copy.source, copy.sha256)


def test_no_digests_or_no_directory_fail(copy: LocalModel) -> None:
    with pytest.raises(IntegrityError, match="no file digests"):
        verify_model_files(copy.source, {})
    with pytest.raises(IntegrityError, match="not a directory"):
        verify_model_files(copy.source / "nowhere", copy.sha256)


def test_the_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(IntegrityError("model.safetensors", "file is missing")))
    assert (error.path, str(error)) == (
        "model.safetensors",
        "integrity check failed for 'model.safetensors': file is missing",
    )
