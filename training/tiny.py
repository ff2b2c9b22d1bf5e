"""A tiny, offline stand-in for Qwen3: a byte-level BPE tokenizer carrying the real Qwen3 chat
template and Qwen3's special tokens, and a randomly initialised `Qwen3ForCausalLM`.

Tests, benchmarks and `training/configs/tiny-cpu.yaml` use it so the whole pipeline runs on a CPU
without downloading weights. Only the vocabulary is small; the template, the special tokens and the
model class are the production ones, so masks, packing and parsing are exercised for real.

    python -m training.tiny --output runs/tiny-qwen3
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from core import cli

# Qwen3's added tokens, in Qwen3's order. `special=False` ones (tool and think tags) survive
# `decode(skip_special_tokens=True)`, exactly as with the real tokenizer, which the parsers rely on.
QWEN3_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)

# The real model's embedding rows (padded beyond the tokenizer's 151,669 entries).
QWEN3_VOCAB_SIZE = 151_936

# Qwen2/Qwen3 pre-tokenisation regex (contractions, letters, single digits, punctuation, spaces).
_QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def qwen3_chat_template() -> str:
    """The official Qwen3 chat template, as shipped inside the installed `trl` package."""
    return (resources.files("trl") / "chat_templates" / "qwen3.jinja").read_text(encoding="utf-8")


def _training_corpus() -> list[str]:
    """Text the BPE merges are learned from: chat scaffolding, JSON, tool-call vocabulary."""
    words = str.split(
        "the a an of to in for on with is are was what how please can you get set find list "
        "weather city temperature unit celsius fahrenheit order status customer account balance "
        "transfer amount currency date time search query results flight hotel book cancel email "
        "send subject body user assistant system tool function name arguments description "
        "parameters properties required type string integer number boolean array object enum "
        "items true false null think reasoning answer call calls response error ok thanks "
        "Paris London Tokyo Berlin Madrid Rome Sydney Toronto USD EUR GBP JPY"
    )
    lines = []
    for i, w in enumerate(words):
        nxt = words[(i * 7 + 3) % len(words)]
        lines.append(f"{w} {nxt}, {w.capitalize()} {nxt}. {i} {i * 37 % 1000}")
        lines.append(json.dumps({"name": f"get_{w}", "arguments": {nxt: i, "q": f"{w} {nxt}"}}))
        lines.append(
            json.dumps(
                {
                    "type": "function",
                    "function": {
                        "name": f"{w}_{nxt}",
                        "description": f"Get the {w} of a {nxt}.",
                        "parameters": {
                            "type": "object",
                            "properties": {w: {"type": "string", "description": nxt}},
                            "required": [w],
                        },
                    },
                }
            )
        )
    # Word pairs and numbers give BPE enough distinct merges to reach a realistic small vocabulary.
    lines.extend(f"{a} {b}_{a}{b.capitalize()} {len(a) * len(b)}" for a in words for b in words)
    lines.append("# Tools\n\nYou may call one or more functions to assist with the user query.")
    return lines


def build_tokenizer(vocab_size: int = 2048) -> Any:
    """Train a byte-level BPE tokenizer offline and wrap it as a `PreTrainedTokenizerFast`.

    `vocab_size` counts the BPE vocabulary including Qwen3's added tokens.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(QWEN3_ADDED_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_corpus() * 4, trainer=trainer)
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken(t, special=True) for t, s in QWEN3_ADDED_TOKENS if s])
    tok.add_tokens([AddedToken(t, special=False) for t, s in QWEN3_ADDED_TOKENS if not s])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
    )
    fast.chat_template = qwen3_chat_template()
    return fast


@dataclass(frozen=True)
class TinyShape:
    """Model dimensions; the defaults make a model that trains in seconds on a CPU."""

    hidden_size: int = 64
    num_hidden_layers: int = 2
    intermediate_size: int = 192
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 16
    vocab_size: int | None = None  # None: the tokenizer's length
    tie_word_embeddings: bool = False  # Qwen3-4B ties them; the test models do not


def build_model(tokenizer: Any, shape: TinyShape = TinyShape(), seed: int = 0) -> Any:
    """A randomly initialised `Qwen3ForCausalLM` whose embedding covers `tokenizer`."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    vocab = shape.vocab_size or len(tokenizer)
    if vocab < len(tokenizer):
        raise ValueError(f"vocab_size {vocab} is smaller than the tokenizer ({len(tokenizer)})")
    config = Qwen3Config(
        vocab_size=vocab,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        head_dim=shape.head_dim,
        max_position_embeddings=8192,
        tie_word_embeddings=shape.tie_word_embeddings,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return Qwen3ForCausalLM(config)


def save_tiny(output: Path, shape: TinyShape = TinyShape(), vocab_size: int = 2048) -> Path:
    """Write a tiny tokenizer + model to `output` in the Hugging Face layout; returns `output`."""
    output.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(vocab_size)
    tokenizer.save_pretrained(output)
    build_model(tokenizer, shape).save_pretrained(output)
    return output


@dataclass(frozen=True)
class TinyArgs:
    """``python -m training.tiny``'s options."""

    output: Path
    vocab_size: int = 2048


parse_args = cli.args_parser(TinyArgs, __doc__, module="training.tiny")


def main(args: TinyArgs) -> int:
    print(save_tiny(args.output, vocab_size=args.vocab_size))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
