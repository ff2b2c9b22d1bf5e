"""Turn tool-calling JSONL (OpenAI messages, xLAM, Hermes/ShareGPT, raw text) into the training set:
packed shards for `training.train` (or inspectable JSONL with ``--no-pack``), a quarantine of every
rejected record with its line and reason, and a held-out evaluation split.

    python -m training.prepare --input data.jsonl --output runs/data --tokenizer runs/tiny-qwen3
    python -m training.prepare --task preference --input pairs.jsonl --output runs/pairs \
        --tokenizer runs/tiny-qwen3    # chosen/rejected pairs for DPO (training.data.preference)
    python -m training.prepare --backend processing --bu fraud --input s3://... --output s3://... \
        --tokenizer s3://...      # the same, as a SageMaker Processing job (training.job.cli)

Output (written to a temporary folder, then renamed, so a failed run never leaves half a dataset):
``manifest.json`` + ``packs-*.safetensors`` (or ``train.jsonl``), ``quarantine.jsonl``
(``{"line", "kind", "reason", "record"}``), ``eval.jsonl`` (held-out conversations in messages
format, or held-out pairs as given for ``--task preference``) and ``stats.json``.

Packing streams (`training.data.spill`): each tokenised row goes to a spill file inside the
temporary folder as it is made (by the worker that made it), only its length and place stay in
memory, and the shards are written by reading the rows back, so memory does not grow with the
input. The spill takes 8 bytes a token on disk until the shards are written (``stats.json``:
``spill_bytes``), and is deleted before the rename, or with the temporary folder on failure.

The input is read as bytes, line by line, and no line can stop the run: a line over
``--max-line-bytes`` is refused before it is decoded or tokenised (``line_too_long``), one that
is not UTF-8 is ``not_utf8``, and JSON that Python cannot safely hold (an integer past its digit
limit, nesting past `MAX_JSON_DEPTH`, a lone ``\\ud800`` escape) is ``number_too_large``,
``too_deep`` or ``lone_surrogate``; each is quarantined with its line number, the rest kept.
When more than ``--max-bad-fraction`` of the records are rejected the run fails: the folder then
holds only the quarantine and the stats, so nothing is lost and no trainer can pick up a dataset
that silently lost its data.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from core import cli as core_cli
from training.data.conversation import Conversation, ConversationError, RecordError
from training.data.formats import (
    FORMATS,
    TextDocument,
    numbered_lines,
    parse_line,
    record_meta,
)
from training.data.packing import best_fit
from training.data.preference import (
    PREFERENCE,
    SEGMENTS_PER_PAIR,
    PairExample,
    PreferenceRecord,
    encode_pairs,
    pair_segments,
    parse_preference,
)
from training.data.render import Example, Rendered, encode, encode_texts, has_reasoning, render
from training.data.spill import (
    SpilledRows,
    SpillIndex,
    SpillWriter,
    remove_spill,
    write_spilled_packs,
)
from training.data.stream import UNPACKED
from training.model.dirs import local_dir

TASKS = ("sft", "preference")
BACKENDS = ("local", "processing")
QUARANTINE = "quarantine.jsonl"
EVAL = "eval.jsonl"
STATS = "stats.json"
SPILL = ".spill"  # inside the temporary output folder: tokenised rows waiting to be packed
SHARD_PACKS = 4096  # packs a safetensors shard
# Bytes of a JSONL line per token of its rendering, at most, for the data this reads: English
# runs ~4, a "\uXXXX" escape is 6 bytes for one character, an escaped emoji pair 12, and a JSON
# string inside a JSON string (xLAM's tools) doubles its escapes. A line over --max-length x this
# would need more bytes a token than any of these to fit, so it is refused before it is parsed
# or tokenised (a 21 MB line used to be tokenised for a minute first). Raise --max-line-bytes
# for data that packs more bytes into a token (long whitespace runs).
BYTES_PER_TOKEN = 32
# --format text: a long document is data (cut into --max-length chunks), so only memory bounds it.
TEXT_LINE_BYTES = 64 << 20


@dataclass(frozen=True)
class PrepareArgs:
    input: Path = field(metadata={"help": "JSONL file to read"})
    output: Path = field(metadata={"help": "output folder (replaced atomically)"})
    tokenizer: str = field(metadata={"help": "tokenizer folder or name; its chat template renders"})
    format: str = field(
        default="auto",
        metadata={"help": "input format; auto decides per record", "choices": FORMATS},
    )
    task: str = field(
        default="sft",
        metadata={
            "help": "sft: conversations (or text); preference: chosen/rejected pairs for DPO "
            "(training.data.preference)",
            "choices": TASKS,
        },
    )
    max_length: int = field(
        default=4096, metadata={"help": "longest sequence in tokens, also the pack length"}
    )
    pack: bool = field(
        default=True, metadata={"help": "write packed shards; --no-pack writes train.jsonl"}
    )
    max_bad_fraction: float = field(
        default=0.01, metadata={"help": "fail when more than this fraction of records is rejected"}
    )
    enable_thinking: bool = field(
        default=True,
        metadata={"help": "thinking mode; --no-enable-thinking trains Qwen3's non-thinking mode"},
    )
    eval_fraction: float = field(
        default=0.0, metadata={"help": "fraction of conversations held out to eval.jsonl"}
    )
    seed: int = field(
        default=0, metadata={"help": "seed of the (per-record, streaming) eval split"}
    )
    max_line_bytes: int = field(
        default=0,
        metadata={
            "help": "refuse longer lines unparsed (quarantine kind line_too_long); 0: "
            f"--max-length x {BYTES_PER_TOKEN} bytes, or {TEXT_LINE_BYTES >> 20} MiB with "
            "--format text, whose long documents are cut into chunks"
        },
    )
    batch_size: int = field(default=256, metadata={"help": "records tokenised per batch"})
    workers: int = field(
        default=1, metadata={"help": "processes rendering and tokenising batches in parallel"}
    )
    quiet: bool = field(default=False, metadata={"help": "no progress bar"})

    def __post_init__(self) -> None:
        # Fail before reading anything rather than after an hour of tokenising.
        if self.max_length <= 0 or self.batch_size <= 0 or self.workers <= 0:
            raise ValueError("--max-length, --batch-size and --workers must be positive")
        if not 0 <= self.max_bad_fraction <= 1:
            raise ValueError(f"--max-bad-fraction must be in [0, 1], got {self.max_bad_fraction}")
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"--eval-fraction must be in [0, 1), got {self.eval_fraction}")
        if self.max_line_bytes < 0:
            raise ValueError(f"--max-line-bytes must not be negative, got {self.max_line_bytes}")

    @property
    def line_byte_limit(self) -> int:
        """The byte limit per input line (`max_line_bytes`, or the one derived from it)."""
        if self.max_line_bytes:
            return self.max_line_bytes
        return TEXT_LINE_BYTES if self.format == "text" else self.max_length * BYTES_PER_TOKEN


# Per-record outcomes that, with the errors, add up to the records read.
COUNTED = (
    "train_conversations", "eval_conversations", "text_documents", "train_pairs", "eval_pairs",
)  # fmt: skip


class TooManyBadRecordsError(RuntimeError):
    """More records were rejected than `--max-bad-fraction` allows."""


def held_out(line: int, seed: int, fraction: float) -> bool:
    """A stable per-record coin: the same lines are held out on every run, without a shuffle
    buffer, so the split streams and never leaks a conversation into both sets."""
    if fraction <= 0:
        return False
    digest = hashlib.blake2b(f"{seed}:{line}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


@dataclass
class Processed:
    """What one batch of input lines became; pure data, so worker processes can return it.

    When packing, the kept rows are spilled to disk by the process that made them (`spill`):
    `kept` is then empty and `spilled` says where they went."""

    kept: list[Example | PairExample] = field(default_factory=list)
    spilled: SpilledRows | None = None
    held_out: list[dict[str, Any]] = field(default_factory=list)  # eval records
    errors: list[RecordError] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


Line = tuple[int, str | RecordError]  # (line number, text or the reader's refusal)


def _readable(lines: list[Line], out: Processed) -> list[tuple[int, str]]:
    """The lines the reader could decode; its refusals go straight to `out.errors`."""
    readable = []
    for number, raw in lines:
        if isinstance(raw, RecordError):
            out.errors.append(raw)
        else:
            readable.append((number, raw))
    return readable


def process_batch(lines: list[Line], args: PrepareArgs, tokenizer: Any) -> Processed:
    """Parse, validate, render and tokenise a batch of ``(line number, text)``."""
    if args.task == "preference":
        return process_pairs(lines, args, tokenizer)
    out = Processed()
    convs: list[tuple[str, Conversation, Rendered]] = []
    docs: list[TextDocument] = []
    for number, raw in _readable(lines, out):
        record = parse_line(raw, number, args.format)
        if isinstance(record, RecordError):
            out.errors.append(record)
        elif isinstance(record, TextDocument):
            docs.append(record)
        else:
            try:
                rendered = render(tokenizer, record, enable_thinking=args.enable_thinking)
                convs.append((raw, record, rendered))
            except ConversationError as e:
                out.errors.append(RecordError(number, e.kind, f"line {number}: {e}", raw))
    out.counts["text_documents"] += len(docs)
    for ex in encode_texts(tokenizer, docs, max_length=args.max_length):
        out.counts["text_chunks"] += 1
        out.kept.append(ex)
    results = encode(tokenizer, [r for _, _, r in convs], max_length=args.max_length)
    for (raw, conv, _), result in zip(convs, results, strict=True):
        line = conv.source_line
        if isinstance(result, ConversationError):
            out.errors.append(RecordError(line, result.kind, f"line {line}: {result}", raw))
            continue
        if not args.enable_thinking and has_reasoning(conv):
            out.counts["reasoning_dropped"] += 1
        if held_out(line, args.seed, args.eval_fraction):
            out.counts["eval_conversations"] += 1
            held = conv.to_record()
            held["meta"] = {**held.get("meta", {}), "source_line": line}
            out.held_out.append(held)
        else:
            out.counts["train_conversations"] += 1
            out.kept.append(result)
    return out


def process_pairs(lines: list[Line], args: PrepareArgs, tokenizer: Any) -> Processed:
    """`process_batch` for preference records: parse, check, render and tokenise each pair."""
    out = Processed()
    records: list[PreferenceRecord] = []
    for number, raw in _readable(lines, out):
        record = parse_preference(raw, number)
        if isinstance(record, RecordError):
            out.errors.append(record)
        else:
            records.append(record)
    results = encode_pairs(
        tokenizer, records, max_length=args.max_length, enable_thinking=args.enable_thinking
    )
    for rec, result in zip(records, results, strict=True):
        line = rec.source_line
        if isinstance(result, ConversationError):
            raw = json.dumps(rec.record, ensure_ascii=False)
            out.errors.append(RecordError(line, result.kind, f"line {line}: {result}", raw))
        elif held_out(line, args.seed, args.eval_fraction):
            out.counts["eval_pairs"] += 1
            meta = {**record_meta(rec.record), "source_line": line}
            out.held_out.append({**rec.record, "meta": meta})
        else:
            out.counts["train_pairs"] += 1
            out.kept.append(result)
    return out


def spill(out: Processed, writer: SpillWriter) -> Processed:
    """Move a batch's kept rows to `writer`'s file: `out` keeps only where they went.

    A sequence is one row of one segment; a preference pair one row ``[prompt | chosen |
    rejected]`` of three (`preference.pair_segments`, what `pack_pairs` lays out)."""
    rows: list[tuple[Any, Any]] = []
    segments: list[list[int]] = []
    for ex in out.kept:
        if isinstance(ex, PairExample):
            ids, labels, lens = pair_segments(ex)
            rows.append((ids, labels))
            segments.append(lens)
        else:
            rows.append((ex.input_ids, ex.labels))
            segments.append([len(ex.input_ids)])
    out.spilled = writer.write(rows, segments)
    out.kept = []
    return out


# Worker processes inherit the arguments, the tokenizer and the spill folder by fork instead of
# pickling them; each spills its rows to a file of its own, so no token array travels back.
_WORKER: tuple[PrepareArgs, Any, Path | None] | None = None
_SPILL: SpillWriter | None = None


def _init_worker(args: PrepareArgs, tokenizer: Any, spill_dir: Path | None) -> None:
    global _WORKER, _SPILL  # per-process state of a multiprocessing pool
    _WORKER, _SPILL = (args, tokenizer, spill_dir), None


def _process_in_worker(lines: list[Line]) -> Processed:
    global _SPILL  # noqa: PLW0603 -- per-process state of a multiprocessing pool
    assert _WORKER is not None  # noqa: S101
    args, tokenizer, spill_dir = _WORKER
    out = process_batch(lines, args, tokenizer)
    if spill_dir is None:
        return out
    if _SPILL is None:
        _SPILL = SpillWriter(spill_dir)
    return spill(out, _SPILL)


class _Run:
    """One prepare run's open outputs and counters, fed processed batches in input order."""

    def __init__(self, args: PrepareArgs, directory: Path, stack: ExitStack):
        self.args = args
        self.counts: Counter[str] = Counter()
        self.bad: Counter[str] = Counter()
        # Packing: where every kept row was spilled, in input order (a few bytes a row).
        width = SEGMENTS_PER_PAIR if args.task == "preference" else 1
        self.index = SpillIndex(directory / SPILL, width)
        # Tokens of every kept row: the index's own array when packing (no second copy).
        self.lengths = self.index.lengths if args.pack else array("i")
        self.unpacked_loss_tokens = 0  # a packing run's are the index's
        self.quarantine = stack.enter_context((directory / QUARANTINE).open("w", encoding="utf-8"))
        self.eval_file = stack.enter_context((directory / EVAL).open("w", encoding="utf-8"))
        self.jsonl: IO[str] | None = None
        if not args.pack:
            self.jsonl = stack.enter_context((directory / UNPACKED).open("w", encoding="utf-8"))

    def absorb(self, batch: Processed) -> None:
        self.counts.update(batch.counts)
        # Errors and examples of a batch are written in line order within their own files.
        for error in sorted(batch.errors, key=lambda e: e.line):
            self.bad[error.kind] += 1
            self.quarantine.write(json.dumps(error.to_json(), ensure_ascii=False) + "\n")
        for record in batch.held_out:
            self.eval_file.write(json.dumps(record, ensure_ascii=False) + "\n")
        if batch.spilled is not None:
            self.index.add(batch.spilled)
        for ex in batch.kept:
            if self.jsonl is None:  # packing: `spill` moved every kept row to disk already
                raise RuntimeError("a kept row reached the main process unspilled")
            self.unpacked_loss_tokens += ex.num_loss_tokens
            if isinstance(ex, PairExample):
                self.lengths.append(ex.num_tokens)
                self.jsonl.write(json.dumps(ex.to_json(), separators=(",", ":")) + "\n")
                continue
            self.lengths.append(len(ex.input_ids))
            record = {"line": ex.source_line, "input_ids": ex.input_ids, "labels": ex.labels}
            self.jsonl.write(json.dumps(record, separators=(",", ":")) + "\n")

    def stats(self) -> dict[str, Any]:
        args, counts = self.args, self.counts
        lengths = np.asarray(self.lengths, dtype=np.int64)
        loss_tokens = self.index.loss_tokens if args.pack else self.unpacked_loss_tokens
        rejected = sum(self.bad.values())
        read = rejected + sum(counts[k] for k in COUNTED)
        fraction = rejected / read if read else 0.0
        return {
            "status": "failed" if fraction > args.max_bad_fraction else "ok",
            "input": str(args.input),
            "task": args.task,
            "tokenizer": str(args.tokenizer),
            "format": args.format,
            "enable_thinking": args.enable_thinking,
            "max_length": args.max_length,
            "max_line_bytes": args.line_byte_limit,
            "records_read": read,
            "quarantined": rejected,
            "quarantined_by_kind": dict(sorted(self.bad.items())),
            "bad_fraction": fraction,
            "max_bad_fraction": args.max_bad_fraction,
            **{
                k: counts[k]
                for k in (
                    "train_conversations",
                    "eval_conversations",
                    "text_documents",
                    "train_pairs",
                    "eval_pairs",
                    "text_chunks",
                    "reasoning_dropped",
                )
            },
            "sequences": len(self.lengths),
            "tokens": int(lengths.sum()),
            "loss_tokens": loss_tokens,
            "mean_tokens": float(np.mean(lengths)) if len(lengths) else 0.0,
            "max_tokens": int(lengths.max(initial=0)),
            "spill_bytes": self.index.bytes,
        }


def _progress(quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        desc="prepare", unit="rec", dynamic_ncols=True, disable=quiet or not sys.stderr.isatty()
    )


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(local_dir(name, what="--tokenizer"))
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"tokenizer {name!r} has no chat template; masks come from rendering it")
    return tokenizer


def main(args: PrepareArgs, tokenizer: Any = None) -> dict[str, Any]:
    """Prepare the dataset; return the stats (also written to ``stats.json``).

    `tokenizer` overrides loading `args.tokenizer` (tests pass one they built). Raises
    `TooManyBadRecordsError` after writing the quarantine when the bad fraction is too high,
    and `ValueError` when nothing at all could be kept.
    """
    started = time.perf_counter()
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(args.tokenizer)
    out = args.output
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with ExitStack() as stack:
            run = _Run(args, tmp, stack)
            spill_dir = run.index.directory if args.pack else None
            if spill_dir is not None:
                spill_dir.mkdir()
            bar = stack.enter_context(_progress(args.quiet))
            lines = numbered_lines(args.input, max_line_bytes=args.line_byte_limit)
            batches = _batches(lines, args.batch_size)
            if args.workers > 1:
                # What the workers inherit stays out of every collection while they run, so no
                # worker's collector writes to the parent's pages and copies them (the advice
                # of Python's `gc.freeze` for fork): about 95 MiB less PSS at 2 workers.
                if gc.get_freeze_count() == 0:
                    gc.freeze()
                    stack.callback(gc.unfreeze)
                pool = stack.enter_context(
                    multiprocessing.get_context("fork").Pool(
                        args.workers, _init_worker, (args, tokenizer, spill_dir)
                    )
                )
                results: Iterator[Processed] = pool.imap(_process_in_worker, batches)
            elif spill_dir is not None:
                writer = SpillWriter(spill_dir)
                stack.callback(writer.close)
                results = (spill(process_batch(b, args, tokenizer), writer) for b in batches)
            else:
                results = (process_batch(b, args, tokenizer) for b in batches)
            for processed in results:
                run.absorb(processed)
                bar.update(len(processed.errors) + sum(processed.counts[k] for k in COUNTED))
                bar.set_postfix(kept=len(run.lengths), bad=sum(run.bad.values()), refresh=False)
        stats = run.stats()
        if stats["status"] == "failed":
            for name in (UNPACKED, EVAL):
                (tmp / name).unlink(missing_ok=True)
        elif not run.lengths:
            raise ValueError(
                f"{args.input}: no record could be kept ({stats['quarantined']} rejected)"
            )
        elif args.pack:
            _write_packs(run, tmp, stats)
        remove_spill(run.index.directory)
        stats["seconds"] = time.perf_counter() - started
        stats["records_per_second"] = stats["records_read"] / stats["seconds"]
        (tmp / STATS).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if stats["status"] == "failed":
        raise TooManyBadRecordsError(
            f"{stats['quarantined']} of {stats['records_read']} records rejected"
            f" ({stats['bad_fraction']:.2%} > --max-bad-fraction {args.max_bad_fraction:.2%});"
            f" by kind: {stats['quarantined_by_kind']}; see {out / QUARANTINE}"
        )
    return stats


def _write_packs(run: _Run, directory: Path, stats: dict[str, Any]) -> None:
    """The packs `pack_sequences` (or `pack_pairs`) makes of the kept rows, in the same order,
    written shard by shard from the spill: only the rows' lengths were held."""
    args = run.args
    metadata = {k: stats[k] for k in ("input", "tokenizer", "format", "enable_thinking")}
    if args.task == "preference":
        metadata.update(kind=PREFERENCE, num_pairs=len(run.lengths))
    bins = best_fit(run.index.lengths, args.max_length)
    manifest = write_spilled_packs(
        directory,
        bins,
        run.index,
        pack_length=args.max_length,
        packs_per_shard=SHARD_PACKS,
        metadata=metadata,
    )
    stats["packs"] = len(bins)
    stats["pack_fill"] = json.loads(manifest.read_text(encoding="utf-8"))["fill"]


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _replace_dir(new: Path, target: Path) -> None:
    """Swap `new` in for `target` with renames: readers see the old folder or the new one."""
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def _backend_help(parser: argparse.ArgumentParser) -> None:
    """List ``--backend`` in ``--help``; `cli` reads and removes ``--backend`` before parsing
    (``local`` runs here, ``processing`` goes to `training.job.cli`)."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=argparse.SUPPRESS,
        help="local (the default): here; processing: the same preparation as a SageMaker "
        "Processing job with the BU's image, reading and writing its data bucket (needs --bu; "
        "`--backend processing --help` lists its options: --bu, --region, --tag, "
        "--instance-type, ...)",
    )


def _split_backend(argv: list[str]) -> tuple[str | None, list[str]]:
    """The ``--backend`` value given (None if absent) and the arguments without it."""
    backend, rest, tokens = None, [], iter(argv)
    for token in tokens:
        if token == "--backend":
            backend = next(tokens, "")
        elif token.startswith("--backend="):
            backend = token.split("=", 1)[1]
        else:
            rest.append(token)
    return backend, rest


def parse_args(argv: Sequence[str] | None = None) -> PrepareArgs:
    """The local preparation's options; `cli` hands a ``--backend processing`` run elsewhere
    before parsing."""
    return core_cli.parse_args(
        PrepareArgs, __doc__, argv, module="training.prepare", extend=_backend_help
    )


def cli(argv: list[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    backend, local_args = _split_backend(given)
    if backend is not None and backend not in BACKENDS:
        print(f"error: --backend: {backend!r} is not one of {', '.join(BACKENDS)}", file=sys.stderr)
        return 2
    if backend == "processing":
        # A SageMaker Processing job; training.job.cli never calls back into this module.
        from training.job.cli import prepare_main

        return prepare_main(given)
    args = parse_args(local_args)
    try:
        stats = main(args)
    except TooManyBadRecordsError as e:
        print(f"prepare failed: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as e:
        print(f"prepare failed: {e}", file=sys.stderr)
        return 2
    summary = {k: stats[k] for k in ("records_read", "sequences", "quarantined", "tokens")}
    if args.task == "preference":
        summary["pairs"] = summary.pop("sequences")
    print(json.dumps({**summary, "pack_fill": stats.get("pack_fill"), "output": str(args.output)}))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
