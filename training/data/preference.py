"""Preference pairs for DPO: parsed from the JSONL formats people have, rendered by the tokenizer's
own chat template, checked, and packed with the prompt stored once per pair.

Input formats (``python -m training.prepare --task preference``), decided per record:

- **explicit prompt** (TRL's conversational preference format): ``prompt`` (messages, the
  system turn included), ``chosen`` and ``rejected`` (the assistant's continuations: a list of
  messages, one message, or a string), optional ``tools``;
- **whole conversations**: ``chosen`` and ``rejected`` are complete message lists that share a
  prefix; the shared prefix is the prompt, and the two must part at an assistant turn.

Masks come from the template, as for SFT (`training.data.render`): loss only on each
completion's assistant tokens, never on the prompt (earlier assistant turns included).

Checks (quarantined with line and kind, as prepare does for SFT): ``identical_completions``,
``prefix_mismatch``, a chosen completion naming a tool not offered (``unknown_tool``) or with
arguments its schema rejects (``invalid_arguments``), ``too_long`` (prompt + both completions
over the pack length, since a pair travels as one row), plus every conversation check. A rejected
completion may call a tool that does not exist: that is a mistake worth training against.

Pack layout: one pair is three segments laid end to end, ``[prompt | chosen | rejected]``, so a
pack's ``seq_lens`` holds a (prompt, chosen, rejected) triplet per pair, and the manifest says
``"kind": "preference"``. The model reads the prompt once: chosen continues it causally, and
rejected attends to the prompt and to itself, never to chosen, with positions continuing from
the prompt (`training.model.preference`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from inference.parsing import parse_message
from training.data.conversation import Conversation, ConversationError, RecordError, decode_json
from training.data.formats import read_messages, read_or_error
from training.data.packing import IGNORE_INDEX, Pack, best_fit
from training.data.render import Rendered, encode, render, render_text

PREFERENCE = "preference"  # manifest `kind` of a packed preference set
SEGMENTS_PER_PAIR = 3


@dataclass(frozen=True)
class PreferenceRecord:
    """A pair as two whole conversations that share their first `prompt_turns` messages."""

    chosen: Conversation
    rejected: Conversation
    prompt_turns: int
    source_line: int
    record: dict[str, Any]  # the input record, for the eval split


@dataclass(frozen=True)
class PairExample:
    """Token ids of one pair: the prompt once, each completion after it (labels unshifted,
    -100 where no loss)."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    chosen_labels: list[int]
    rejected_ids: list[int]
    rejected_labels: list[int]
    source_line: int = 0

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.chosen_ids) + len(self.rejected_ids)

    @property
    def num_loss_tokens(self) -> int:
        labels = (*self.chosen_labels, *self.rejected_labels)
        return sum(1 for t in labels if t != IGNORE_INDEX)

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.source_line,
            "prompt_ids": self.prompt_ids,
            "chosen_ids": self.chosen_ids,
            "chosen_labels": self.chosen_labels,
            "rejected_ids": self.rejected_ids,
            "rejected_labels": self.rejected_labels,
        }

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> PairExample:
        return cls(
            prompt_ids=list(row["prompt_ids"]),
            chosen_ids=list(row["chosen_ids"]),
            chosen_labels=list(row.get("chosen_labels", row["chosen_ids"])),
            rejected_ids=list(row["rejected_ids"]),
            rejected_labels=list(row.get("rejected_labels", row["rejected_ids"])),
            source_line=int(row.get("line", 0)),
        )


# --- reading ------------------------------------------------------------------------------------


def _messages(value: Any, what: str) -> list[Any]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list) or not value:
        raise ConversationError("malformed_record", f"{what} is not a non-empty message list")
    return value


def parse_preference(line: str, number: int) -> PreferenceRecord | RecordError:
    """One JSONL line as a `PreferenceRecord`, or the `RecordError` saying why not."""
    return read_or_error(lambda: _read(decode_json(line, "the line"), number), line, number)


def _read(obj: Any, number: int) -> PreferenceRecord:
    if not isinstance(obj, dict):
        raise ConversationError("malformed_record", "record is not a JSON object")
    if missing := [k for k in ("chosen", "rejected") if k not in obj]:
        raise ConversationError(
            "malformed_record",
            f"preference record lacks {', '.join(missing)} (expected prompt + chosen + rejected, "
            "or chosen + rejected conversations)",
        )
    chosen = _messages(obj["chosen"], "chosen")
    rejected = _messages(obj["rejected"], "rejected")
    if "prompt" in obj:
        prompt = _messages(obj["prompt"], "prompt")
    else:
        prompt, chosen, rejected = _split_shared_prefix(chosen, rejected)
    if chosen == rejected:
        raise ConversationError("identical_completions", "chosen and rejected are the same")
    for side, messages in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(messages[0], dict) or messages[0].get("role") != "assistant":
            raise ConversationError(
                "prefix_mismatch", f"the {side} completion does not start with an assistant turn"
            )
    tools = obj.get("tools")
    meta = obj.get("meta")
    chosen_conv = read_messages({"messages": prompt + chosen, "tools": tools, "meta": meta}, number)
    rejected_conv = read_messages(
        {"messages": prompt + rejected, "tools": tools, "meta": meta},
        number,
        known_tools_only=False,
    )
    turns = len(prompt)
    if chosen_conv.messages[turns:] == rejected_conv.messages[turns:]:
        raise ConversationError(
            "identical_completions", "chosen and rejected read as the same messages"
        )
    _check_chosen_arguments(chosen_conv, turns)
    return PreferenceRecord(chosen_conv, rejected_conv, turns, number, obj)


def _split_shared_prefix(chosen: list[Any], rejected: list[Any]) -> tuple[list[Any], ...]:
    """The longest shared message prefix of two whole conversations, and what follows it."""
    shared = 0
    for a, b in zip(chosen, rejected, strict=False):
        if a != b:
            break
        shared += 1
    if shared == 0:
        raise ConversationError(
            "prefix_mismatch", "chosen and rejected share no prefix (not the same prompt)"
        )
    if shared == len(chosen) or shared == len(rejected):
        raise ConversationError(
            "identical_completions" if len(chosen) == len(rejected) else "prefix_mismatch",
            "one conversation is a prefix of the other: nothing to compare",
        )
    return chosen[:shared], chosen[shared:], rejected[shared:]


def _check_chosen_arguments(conv: Conversation, turns: int) -> None:
    """A chosen call must be right: offered tool (checked when reading) and schema-valid
    arguments, with the parser the endpoint client uses."""
    tools = list(conv.tools)
    for message in conv.to_record()["messages"][turns:]:  # OpenAI form, as an endpoint returns
        if message["role"] != "assistant" or not message.get("tool_calls"):
            continue
        parsed = parse_message(message, tools)
        if parsed.errors:
            raise ConversationError(
                "invalid_arguments", f"the chosen completion: {parsed.errors[0].reason}"
            )


# --- tokenising ---------------------------------------------------------------------------------


def _completion_only(rendered: Rendered, prompt_chars: int) -> Rendered:
    spans = tuple(s for s in rendered.loss_spans if s[0] >= prompt_chars)
    return replace(rendered, loss_spans=spans)


def encode_pairs(
    tokenizer: Any,
    records: Sequence[PreferenceRecord],
    *,
    max_length: int,
    enable_thinking: bool = True,
) -> list[PairExample | ConversationError]:
    """Render and tokenise pairs: the prompt is the template's generation prompt, and each side's
    tokens must start with exactly the prompt's tokens (else ``mask_misaligned``)."""
    rendered: list[tuple[str, Rendered, Rendered]] = []
    results: dict[int, PairExample | ConversationError] = {}
    for i, rec in enumerate(records):
        try:
            prompt = render_text(
                tokenizer,
                rec.chosen,
                enable_thinking=enable_thinking,
                upto=rec.prompt_turns,
                add_generation_prompt=True,
            )
            sides = []
            for conv in (rec.chosen, rec.rejected):
                r = render(tokenizer, conv, enable_thinking=enable_thinking)
                if not r.text.startswith(prompt):
                    raise ConversationError(
                        "template_mismatch", "the rendered pair does not start with its prompt"
                    )
                sides.append(_completion_only(r, len(prompt)))
            rendered.append((prompt, sides[0], sides[1]))
        except ConversationError as e:
            results[i] = e
            rendered.append(("", Rendered("", ()), Rendered("", ())))
    ok = [i for i in range(len(records)) if i not in results]
    unlimited = 1 << 62  # the pair's total is what must fit; checked below
    chosen = encode(tokenizer, [rendered[i][1] for i in ok], max_length=unlimited)
    rejected = encode(tokenizer, [rendered[i][2] for i in ok], max_length=unlimited)
    prompts = tokenizer([rendered[i][0] for i in ok], add_special_tokens=False)["input_ids"]
    for i, good, bad, ids in zip(ok, chosen, rejected, prompts, strict=True):
        results[i] = _pair(records[i], good, bad, list(ids), max_length)
    return [results[i] for i in range(len(records))]


def _pair(
    rec: PreferenceRecord, chosen: Any, rejected: Any, prompt: list[int], max_length: int
) -> PairExample | ConversationError:
    for side in (chosen, rejected):
        if isinstance(side, ConversationError):
            return side
        if side.input_ids[: len(prompt)] != prompt:
            return ConversationError(
                "mask_misaligned", "a completion's first token merges with the prompt's last"
            )
    n = len(prompt)
    c_ids, c_lab = _trim(chosen.input_ids[n:], chosen.labels[n:])
    r_ids, r_lab = _trim(rejected.input_ids[n:], rejected.labels[n:])
    pair = PairExample(prompt, c_ids, c_lab, r_ids, r_lab, rec.source_line)
    if pair.num_tokens > max_length:
        return ConversationError(
            "too_long",
            f"prompt + chosen + rejected is {pair.num_tokens} tokens, more than the pack length "
            f"{max_length}",
        )
    if c_ids == r_ids:
        return ConversationError("identical_completions", "both completions tokenise the same")
    return pair


def _trim(ids: list[int], labels: list[int]) -> tuple[list[int], list[int]]:
    """Drop the unlabelled tail (the newline after ``<|im_end|>``): nothing predicts from it."""
    end = len(labels)
    while end and labels[end - 1] == IGNORE_INDEX:
        end -= 1
    return ids[:end], labels[:end]


# --- packing ------------------------------------------------------------------------------------


def pair_segments(pair: PairExample) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The pair's row ``[prompt | chosen | rejected]``: ids, labels and the three lengths."""
    ids = [*pair.prompt_ids, *pair.chosen_ids, *pair.rejected_ids]
    labels = [IGNORE_INDEX] * len(pair.prompt_ids) + pair.chosen_labels + pair.rejected_labels
    lens = [len(pair.prompt_ids), len(pair.chosen_ids), len(pair.rejected_ids)]
    return np.asarray(ids, dtype=np.int32), np.asarray(labels, dtype=np.int32), lens


def pack_pairs(pairs: Sequence[PairExample], capacity: int) -> list[Pack]:
    """Best-fit pairs (each whole, prompt once) into packs of at most `capacity` tokens."""
    packs = []
    for members in best_fit([p.num_tokens for p in pairs], capacity):
        parts = [pair_segments(pairs[i]) for i in members]
        packs.append(
            Pack(
                input_ids=np.concatenate([ids for ids, _, _ in parts]),
                labels=np.concatenate([lab for _, lab, _ in parts]),
                seq_lens=np.asarray([n for *_, lens in parts for n in lens], dtype=np.int32),
            )
        )
    return packs


def pairs_in(seq_lens: np.ndarray) -> int:
    if len(seq_lens) % SEGMENTS_PER_PAIR:
        raise ValueError(
            f"a preference pack has {len(seq_lens)} segments, not (prompt, chosen, rejected) "
            "triplets: it was not written by `prepare --task preference`"
        )
    return len(seq_lens) // SEGMENTS_PER_PAIR
