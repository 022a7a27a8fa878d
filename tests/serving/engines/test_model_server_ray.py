"""The model application on a real, in-process Ray Serve: called through handles as the gateway does."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray import serve
from sovereign_devstack.processes import free_loopback_port
from sovereign_serving.model_server import build_app

from sovereign.serving_contract import AIR_GAP_ENV
from tests.serving.engines.models import LocalModel

pytestmark = pytest.mark.process  # a Ray of the module's own


@pytest.fixture(scope="module")
def ray_serve() -> Iterator[None]:
    # A new local cluster of our own (address="local") in its own temp dir: other tests may run Ray on
    # this machine at the same time, and must neither be joined nor find ours.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": AIR_GAP_ENV},
        _temp_dir=temp_dir,
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": free_loopback_port()})
        yield
    finally:
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def deploy(config: dict[str, Any], name: str) -> None:
    serve.run(build_app(config), name=name, route_prefix=None)


def test_chat_stream_and_embed_through_handles(
    ray_serve: None, tiny_llama: LocalModel, minilm: LocalModel
) -> None:
    started = time.monotonic()
    deploy(tiny_llama.config(max_tokens=16).model_dump(by_alias=True), "fra-tiny")
    deploy(minilm.config(task="embed").model_dump(by_alias=True), "fra-minilm")
    chat_body = {"messages": [{"role": "user", "content": "Hello"}], "temperature": 0, "max_tokens": 8}

    generator = serve.get_app_handle("fra-tiny")
    answer = generator.chat.remote(chat_body).result(timeout_s=60)
    assert answer["object"] == "chat.completion" and answer["model"] == "fra/tiny"
    assert answer["usage"]["completion_tokens"] <= 8

    chunks = list(generator.options(stream=True).chat_stream.remote(chat_body))
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks if chunk["choices"])
    assert text == answer["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == answer["usage"]

    embedder = serve.get_app_handle("fra-minilm")
    embedded = embedder.embed.remote({"input": ["one", "two"]}).result(timeout_s=60)
    assert [len(item["embedding"]) for item in embedded["data"]] == [384, 384]

    with pytest.raises(ValueError, match="is an embedding model"):
        embedder.chat.remote(chat_body).result(timeout_s=60)
    with pytest.raises(ValueError, match="temperature"):
        generator.chat.remote({**chat_body, "temperature": 9}).result(timeout_s=60)
    print(f"two model applications deployed and called in {time.monotonic() - started:.1f} s")
    serve.delete("fra-tiny")
    serve.delete("fra-minilm")


def test_a_tampered_model_fails_to_deploy_naming_the_file(
    ray_serve: None, tiny_llama: LocalModel, tmp_path: Path
) -> None:
    started = time.monotonic()
    shutil.copytree(tiny_llama.source, tmp_path / "model")
    weights = tmp_path / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    config = LocalModel(tmp_path / "model", tiny_llama.sha256).config().model_dump(by_alias=True)

    with pytest.raises(RuntimeError, match="fra-tampered failed"):
        deploy(config, "fra-tampered")
    status = serve.status().applications["fra-tampered"]
    assert status.status == "DEPLOY_FAILED"
    # The application's message is generic; its deployment's message ends with the replica's error.
    assert status.deployments["ModelServer"].status == "DEPLOY_FAILED"
    assert "integrity check failed for 'model.safetensors'" in status.deployments["ModelServer"].message
    print(f"tampered model refused in {time.monotonic() - started:.1f} s")
    serve.delete("fra-tampered")
