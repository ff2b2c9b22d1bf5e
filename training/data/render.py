"""Conversations -> token ids + labels, rendered by the tokenizer's own chat template, with the
loss mask derived from the rendered text: loss on exactly what the assistant generates.

Loss-bearing: each assistant turn's body after its ``<|im_start|>assistant\\n`` header (reasoning
block, content, every ``<tool_call>`` block) through its closing ``<|im_end|>``. No loss on
system, user or tool turns, on headers, or on the newline after ``<|im_end|>``.

Thinking. Whatever the template renders is what the model sees: it drops reasoning of assistant
turns before the last real user query and writes a ``<think>`` block (empty if there is no
reasoning) on the final turn. With ``enable_thinking=True`` the model must produce that block
itself at inference (the generation prompt ends at the header), so it carries loss. With
``enable_thinking=False`` (Qwen3's non-thinking mode) the generation prompt itself ends with
``<think>\\n\\n</think>\\n\\n``: that empty block is prompt, not output, so it carries no loss, and
reasoning is dropped from the data (counted by the caller) since that mode never produces any.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from training.data.conversation import SURROGATE, Conversation, ConversationError
from training.data.formats import TextDocument
from training.data.packing import IGNORE_INDEX

ASSISTANT_HEADER = "<|im_start|>assistant\n"
TURN_END = "<|im_end|>"
EMPTY_THINK = "<think>\n\n</think>\n\n"
_CONTROL = ("<|im_start|>", "<|im_end|>")
_START, _END = operator.itemgetter(0), operator.itemgetter(1)


@dataclass(frozen=True)
class Rendered:
    """A rendered conversation and the character spans that carry loss."""

    text: str
    loss_spans: tuple[tuple[int, int], ...]
    source_line: int = 0


@dataclass(frozen=True)
class Example:
    """One training sequence; `labels` equal `input_ids` where loss is taken (unshifted)."""

    input_ids: list[int]
    labels: list[int]
    source_line: int = 0

    @property
    def num_loss_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE_INDEX)


def without_reasoning(conv: Conversation) -> Conversation:
    """The conversation as non-thinking mode trains it: no reasoning on any turn."""
    return replace(conv, messages=tuple(replace(m, reasoning=None) for m in conv.messages))


def has_reasoning(conv: Conversation) -> bool:
    return any(m.reasoning for m in conv.messages)


def render_text(
    tokenizer: Any,
    conv: Conversation,
    *,
    enable_thinking: bool = True,
    upto: int | None = None,
    add_generation_prompt: bool = False,
) -> str:
    """The chat template's rendering of `conv.messages[:upto]` (all when None)."""
    if not enable_thinking:
        conv = without_reasoning(conv)
    messages = conv.template_messages()[:upto]
    return str(
        tokenizer.apply_chat_template(
            messages,
            tools=list(conv.tools) or None,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            enable_thinking=enable_thinking,
        )
    )


def render(tokenizer: Any, conv: Conversation, *, enable_thinking: bool = True) -> Rendered:
    """Render `conv` with the template and locate its loss spans in the rendered text."""
    for m in conv.messages:
        for text in (m.content, m.reasoning or ""):
            if any(c in text for c in _CONTROL):
                raise ConversationError(
                    "control_tokens", f"a {m.role} message contains chat control tokens {_CONTROL}"
                )
    text = render_text(tokenizer, conv, enable_thinking=enable_thinking)
    if SURROGATE.search(text):  # e.g. from a call body decoded inside the text: unencodable
        raise ConversationError("lone_surrogate", "the rendered text holds a lone surrogate")
    spans = loss_spans(text, mask_empty_think=not enable_thinking)
    expected = sum(1 for m in conv.messages if m.role == "assistant")
    if len(spans) != expected:
        raise ConversationError(
            "template_mismatch",
            f"rendered text has {len(spans)} assistant turns, the conversation {expected}",
        )
    return Rendered(text, spans, conv.source_line)


def loss_spans(text: str, *, mask_empty_think: bool = False) -> tuple[tuple[int, int], ...]:
    """Character spans of assistant output: after each header through its ``<|im_end|>``."""
    spans = []
    at = text.find(ASSISTANT_HEADER)
    while at >= 0:
        start = at + len(ASSISTANT_HEADER)
        end = text.find(TURN_END, start)
        if end < 0:
            raise ConversationError("template_mismatch", "assistant turn without <|im_end|>")
        if mask_empty_think and text.startswith(EMPTY_THINK, start):
            start += len(EMPTY_THINK)
        spans.append((start, end + len(TURN_END)))
        at = text.find(ASSISTANT_HEADER, end)
    return tuple(spans)


def spans_to_token_mask(
    offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]
) -> np.ndarray:
    """Boolean loss mask over tokens from character spans.

    Every span must start and end on token boundaries (special tokens are atomic and the
    template puts a newline before each body); a span that cuts a token raises rather than
    silently training on half a token.

    Tokens are consecutive slices of the text, so their starts and their ends never decrease:
    a binary search over the offsets themselves finds a span's first token (the first that
    starts at or after it) and last (the last that ends at or before it), where copying every
    offset into arrays first cost 50 times as much.
    """
    mask = np.zeros(len(offsets), dtype=bool)
    for s, e in spans:
        i0 = bisect.bisect_left(offsets, s, key=_START)
        i1 = bisect.bisect_right(offsets, e, key=_END) - 1
        if i0 >= len(offsets) or offsets[i0][0] != s or i1 < 0 or offsets[i1][1] != e:
            raise ConversationError(
                "mask_misaligned", f"loss span {s}:{e} does not fall on token boundaries"
            )
        mask[i0 : i1 + 1] = True
    return mask


def encode(
    tokenizer: Any, rendered: Sequence[Rendered], *, max_length: int
) -> list[Example | ConversationError]:
    """Tokenise a batch of rendered conversations into examples (or the error for each one)."""
    if not rendered:
        return []
    batch = tokenizer(
        [r.text for r in rendered],
        return_offsets_mapping=True,
        add_special_tokens=False,
        return_attention_mask=False,  # all ones, unused: not worth a list per sequence
        return_token_type_ids=False,
    )
    decoded = _decode_batch(tokenizer, batch["input_ids"])
    out: list[Example | ConversationError] = []
    for r, ids, offsets, text in zip(
        rendered, batch["input_ids"], batch["offset_mapping"], decoded, strict=True
    ):
        try:
            if len(ids) > max_length:
                raise ConversationError(
                    "too_long", f"{len(ids)} tokens, more than the maximum length {max_length}"
                )
            if text != r.text:
                raise ConversationError(
                    "round_trip", "tokens do not decode back to the rendered text"
                )
            mask = spans_to_token_mask(offsets, r.loss_spans)
            labels = np.where(mask, np.asarray(ids), IGNORE_INDEX).tolist()
            out.append(Example(list(ids), labels, r.source_line))
        except ConversationError as e:
            out.append(e)
    return out


def _decode_batch(tokenizer: Any, ids: list[list[int]]) -> list[str]:
    """Decode with the Rust tokenizer directly when there is one (the Python wrapper's
    per-token conversions cost more than the tokenisation itself)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return list(backend.decode_batch(ids, skip_special_tokens=False))
    return [tokenizer.decode(i) for i in ids]


def encode_conversation(
    tokenizer: Any, conv: Conversation, *, enable_thinking: bool = True, max_length: int = 4096
) -> Example:
    """One conversation -> `Example`; raises `ConversationError` where prepare would quarantine."""
    (result,) = encode(
        tokenizer, [render(tokenizer, conv, enable_thinking=enable_thinking)], max_length=max_length
    )
    if isinstance(result, ConversationError):
        raise result
    return result


def encode_texts(tokenizer: Any, docs: Sequence[TextDocument], *, max_length: int) -> list[Example]:
    """Continued pre-training: each document + end-of-text, loss on every token, cut into
    `max_length` chunks (a long document is data, not an error). A 1-token tail is dropped:
    it has no next token to predict."""
    if not docs:
        return []
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    batch = tokenizer([d.text for d in docs], add_special_tokens=False)["input_ids"]
    out = []
    for doc, doc_ids in zip(docs, batch, strict=True):
        ids = [*doc_ids, eos]
        for i in range(0, len(ids), max_length):
            chunk = ids[i : i + max_length]
            if len(chunk) > 1:
                out.append(Example(chunk, list(chunk), doc.source_line))
    return out
