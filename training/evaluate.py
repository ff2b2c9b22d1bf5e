"""Tool-calling accuracy of a model on held-out conversations, BFCL AST-checker style, with the base
model side by side; writes a JSON report and logs it to MLflow.

    python -m training.evaluate --model runs/export --base-model runs/tiny-qwen3 \\
        --data runs/data/eval.jsonl --output runs/eval.json

Every assistant turn of every conversation is a case: the prompt is the chat template's rendering
of the turns before it (``add_generation_prompt=True``, the conversation's tools), the model
greedy-generates, and `inference.parsing.parse_completion` (the parser the endpoint client uses)
reads ``<think>`` and ``<tool_call>`` out of the completion; `inference.scoring.score_calls`
compares the calls with the ones the data expects. A turn that expects no call scores no-call
accuracy.

Metrics (fractions; `call cases` expect at least one call, `no-call cases` none):
  parse_validity          all cases: tags closed, every call body a JSON object with a name
  function_name_accuracy  call cases: the predicted names are the expected ones (as a multiset)
  arguments_required      call cases with a call: no call misses a required argument
  arguments_no_unexpected call cases with a call: no call has an argument its schema lacks
  arguments_types         call cases with a call: every argument has its schema's type/enum
  arguments_values        call cases: every call with the right name has the expected values
  full_call_accuracy      call cases: exactly the expected calls, nothing else, parse valid
  no_call_accuracy        no-call cases: answered without any tool call
  accuracy                all cases: full call right, or rightly no call

With ``--pairs`` (held-out preference pairs, e.g. ``prepare --task preference``'s eval.jsonl)
each model also gets `preference_accuracy` (log p(chosen) > log p(rejected)) and
`preference_margin` (their mean difference), overall and per ``meta.mistake``
(`training.preference_eval`).

BFCL's AST categories, with BFCL's data and rules, are the sibling command ``python -m
training.bfcl`` (same model loading, generation and MLflow logging).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core import cli as core_cli
from inference.parsing import ErrorKind, ParsedCompletion, parse_completion
from inference.scoring import CallScore, score_calls
from training.data.conversation import Conversation
from training.data.formats import read_jsonl
from training.data.render import render_text
from training.model.dirs import local_dir

# Output that cannot be read at all; the other kinds are about arguments against the schema.
SYNTAX_ERRORS = frozenset(
    {
        ErrorKind.UNCLOSED_TAG,
        ErrorKind.STRAY_TAG,
        ErrorKind.INVALID_JSON,
        ErrorKind.NOT_AN_OBJECT,
        ErrorKind.MISSING_NAME,
        ErrorKind.INVALID_ARGUMENTS,
    }
)
END_OF_TURN = ("<|im_end|>", "<|endoftext|>")

Completer = Callable[[Sequence[str]], list[str]]


@dataclass(frozen=True)
class EvaluateArgs:
    model: str = field(
        metadata={"help": "fine-tuned model folder (merged weights or a LoRA adapter)"}
    )
    data: Path = field(
        metadata={"help": "held-out conversations (prepare's eval.jsonl, any format)"}
    )
    base_model: str | None = field(default=None, metadata={"help": "base model to compare with"})
    tokenizer: str | None = field(default=None, metadata={"help": "tokenizer (default: --model)"})
    max_new_tokens: int = field(default=256, metadata={"help": "generation budget per case"})
    batch_size: int = field(default=8, metadata={"help": "prompts generated together"})
    enable_thinking: bool = field(
        default=True, metadata={"help": "render prompts as prepare did (--no-enable-thinking)"}
    )
    max_cases: int | None = field(default=None, metadata={"help": "evaluate the first N cases"})
    output: Path | None = field(default=None, metadata={"help": "write the JSON report here"})
    mlflow_run_id: str | None = field(
        default=None, metadata={"help": "log into this MLflow run (e.g. the training run)"}
    )
    mlflow_experiment: str | None = field(
        default=None, metadata={"help": "or start a run in this experiment"}
    )
    pairs: Path | None = field(
        default=None,
        metadata={
            "help": "held-out preference pairs (prepare --task preference's eval.jsonl): how "
            "often each model ranks chosen above rejected, per mistake kind"
        },
    )

    def __post_init__(self) -> None:
        if self.max_new_tokens <= 0 or self.batch_size <= 0:
            raise ValueError("--max-new-tokens and --batch-size must be positive")


@dataclass(frozen=True)
class Case:
    """One assistant turn to predict: its prompt and the calls the data expects there."""

    conversation: Conversation
    turn: int
    prompt: str

    @property
    def expected(self) -> list[dict[str, Any]]:
        return [
            {"name": c.name, "arguments": c.arguments}
            for c in self.conversation.messages[self.turn].tool_calls
        ]


def build_cases(
    tokenizer: Any, conversations: Sequence[Conversation], *, enable_thinking: bool = True
) -> list[Case]:
    return [
        Case(
            conv,
            k,
            render_text(
                tokenizer, conv, enable_thinking=enable_thinking, upto=k, add_generation_prompt=True
            ),
        )
        for conv in conversations
        for k, m in enumerate(conv.messages)
        if m.role == "assistant"
    ]


def reference_completion(tokenizer: Any, case: Case, *, enable_thinking: bool = True) -> str:
    """What the data says the model should generate for `case`: the template's rendering of that
    turn as the last one, after the prompt, through ``<|im_end|>``."""
    upto = render_text(
        tokenizer, case.conversation, enable_thinking=enable_thinking, upto=case.turn + 1
    )
    if not upto.startswith(case.prompt):
        raise ValueError(f"turn {case.turn}: the prompt is not a prefix of the rendering")
    return upto[len(case.prompt) :].removesuffix("\n")


def load_conversations(path: Path) -> list[Conversation]:
    """Held-out conversations; a bad record here is a broken eval set, so it raises."""
    out = []
    for _, record in read_jsonl(path):
        if not isinstance(record, Conversation):
            raise ValueError(f"{path}: {getattr(record, 'reason', 'not a conversation')}")
        out.append(record)
    return out


# --- scoring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseResult:
    case: Case
    completion: str
    parsed: ParsedCompletion  # calls validated against the tools
    score: CallScore  # every well-formed call, valid or not, against the expected ones
    syntax_ok: bool
    finished: bool  # ended with an end-of-turn token rather than the token budget

    @property
    def error_kinds(self) -> set[ErrorKind]:
        return {e.kind for e in self.parsed.errors}

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_line": self.case.conversation.meta.get(
                "source_line", self.case.conversation.source_line
            ),
            "turn": self.case.turn,
            "expected": self.case.expected,
            "completion": self.completion,
            "parsed": self.parsed.to_dict(),
            "exact": self.score.exact and self.syntax_ok,
            "mismatches": self.score.mismatches,
            "finished": self.finished,
        }


def score_case(case: Case, completion: str) -> CaseResult:
    tools = list(case.conversation.tools)
    parsed = parse_completion(completion, tools or None)
    # Unvalidated calls too: a call with a wrong argument still has a name to score.
    loose = parse_completion(completion, None)
    return CaseResult(
        case=case,
        completion=completion,
        parsed=parsed,
        score=score_calls(loose.tool_calls, case.expected, tools),
        syntax_ok=not any(e.kind in SYNTAX_ERRORS for e in loose.errors),
        finished=any(t in completion for t in END_OF_TURN),
    )


def _fraction(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def metrics(results: Sequence[CaseResult]) -> dict[str, Any]:
    """The metrics of the module docstring plus counts (None where no case applies)."""
    calls = [r for r in results if r.case.expected]
    no_calls = [r for r in results if not r.case.expected]
    attempted = [r for r in calls if r.score.predicted or r.parsed.tool_calls]

    def names(r: CaseResult) -> bool:
        return r.score.name_matched == r.score.expected == r.score.predicted

    def full(r: CaseResult) -> bool:
        return r.score.exact and r.syntax_ok

    return {
        "parse_validity": _fraction([r.syntax_ok for r in results]),
        "function_name_accuracy": _fraction([names(r) for r in calls]),
        "arguments_required": _fraction(
            [ErrorKind.MISSING_ARGUMENT not in r.error_kinds for r in attempted]
        ),
        "arguments_no_unexpected": _fraction(
            [ErrorKind.UNEXPECTED_ARGUMENT not in r.error_kinds for r in attempted]
        ),
        "arguments_types": _fraction(
            [
                not r.error_kinds & {ErrorKind.WRONG_TYPE, ErrorKind.SCHEMA_VIOLATION}
                for r in attempted
            ]
        ),
        "arguments_values": _fraction(
            [r.score.name_matched > 0 and r.score.matched == r.score.name_matched for r in calls]
        ),
        "full_call_accuracy": _fraction([full(r) for r in calls]),
        "no_call_accuracy": _fraction(
            [r.score.predicted == 0 and not r.parsed.tool_calls and r.syntax_ok for r in no_calls]
        ),
        "accuracy": _fraction([full(r) for r in results]),
        "cases": len(results),
        "call_cases": len(calls),
        "no_call_cases": len(no_calls),
        "expected_calls": sum(r.score.expected for r in results),
        "predicted_calls": sum(r.score.predicted for r in results),
        "unfinished": sum(not r.finished for r in results),
    }


def evaluate_completer(complete: Completer, cases: Sequence[Case]) -> dict[str, Any]:
    """Generate for every case with `complete` and score; returns metrics and per-case details."""
    completions = complete([c.prompt for c in cases])
    results = [score_case(c, text) for c, text in zip(cases, completions, strict=True)]
    return {"metrics": metrics(results), "cases": [r.to_dict() for r in results]}


# --- generation -------------------------------------------------------------------------------


def load_model(path: str) -> Any:
    """A causal LM for generation on the CPU or the first GPU; LoRA adapter folders work too."""
    import torch

    from training.loop.checkpoint import refusing_pickles
    from training.model.modeling import quiet_peft_probe

    local_dir(path, what="model")
    with refusing_pickles(path):  # a pickled weight file: one line, not a traceback
        if (Path(path) / "adapter_config.json").is_file():
            from peft import AutoPeftModelForCausalLM

            with quiet_peft_probe():
                model = AutoPeftModelForCausalLM.from_pretrained(path)
        else:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(path)
    return model.to("cuda" if torch.cuda.is_available() else "cpu").eval()


def hf_completer(
    model: Any, tokenizer: Any, *, max_new_tokens: int = 256, batch_size: int = 8
) -> Completer:
    """Greedy batched generation with left padding; completions keep their special tokens
    (``<|im_end|>`` marks a finished turn; the parser cuts it off)."""
    import torch

    stop = [tokenizer.convert_tokens_to_ids(t) for t in END_OF_TURN]

    @torch.no_grad()
    def complete(prompts: Sequence[str]) -> list[str]:
        tokenizer.padding_side = "left"
        out: list[str] = []
        for i in range(0, len(prompts), batch_size):
            batch = tokenizer(
                list(prompts[i : i + batch_size]),
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(model.device)
            generated = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=stop,
                pad_token_id=tokenizer.pad_token_id,
            )
            new = generated[:, batch["input_ids"].shape[1] :]
            for row in new.tolist():
                text = tokenizer.decode(row, skip_special_tokens=False)
                end = min((text.find(t) + len(t) for t in END_OF_TURN if t in text), default=-1)
                out.append(text if end < 0 else text[:end])  # drop padding after the end
        return out

    return complete


# --- report -----------------------------------------------------------------------------------


# What each row of the table means, printed beside it (fractions of the cases named).
MEANINGS = {
    "parse_validity": "all cases: tags closed, each call a JSON object with a name",
    "function_name_accuracy": "call cases: predicted names = expected names",
    "arguments_required": "call cases with a call: no required argument missing",
    "arguments_no_unexpected": "call cases with a call: no argument outside the schema",
    "arguments_types": "call cases with a call: every argument of its schema's type/enum",
    "arguments_values": "call cases: each rightly named call has the expected values",
    "full_call_accuracy": "call cases: exactly the expected calls, parse valid",
    "no_call_accuracy": "no-call cases: answered without a tool call",
    "accuracy": "all cases: full call right, or rightly no call",
    "cases": "assistant turns scored (call cases + no-call cases)",
    "call_cases": "turns whose reference makes at least one call",
    "no_call_cases": "turns whose reference answers without a call",
    "expected_calls": "calls in the references",
    "predicted_calls": "calls the model made",
    "unfinished": "completions cut off at --max-new-tokens (no end token)",
    "preference_accuracy": "--pairs: log p(chosen) > log p(rejected)",
    "preference_margin": "--pairs: mean log p(chosen) - log p(rejected)",
}


def format_table(report: dict[str, Any]) -> str:
    models = list(report["models"])
    rows = [f"{'metric':<26}" + "".join(f"{m:>10}" for m in models) + "  what it counts"]
    for key in report["models"][models[0]]["metrics"]:
        cells = []
        for m in models:
            v = report["models"][m]["metrics"][key]
            cells.append(
                f"{'-':>10}" if v is None else f"{v:>10.3f}" if isinstance(v, float) else f"{v:>10}"
            )
        rows.append(f"{key:<26}" + "".join(cells) + f"  {MEANINGS.get(key, '')}".rstrip())
    rows.append("-: no case of that kind (e.g. a model that never calls has no argument rows)")
    return "\n".join(rows)


class Tracking(Protocol):
    """The arguments that say where to log (`EvaluateArgs`, `training.bfcl.BfclArgs`)."""

    @property
    def mlflow_run_id(self) -> str | None: ...
    @property
    def mlflow_experiment(self) -> str | None: ...


def log_to_mlflow(
    report: dict[str, Any],
    args: Tracking,
    *,
    run_name: str = "evaluate",
    artifact: str = "eval/report.json",
) -> str | None:
    """Log metrics as ``eval/<model>/<metric>`` and the report as `artifact`.

    Only when a tracking URI is configured (``MLFLOW_TRACKING_URI``) or a run/experiment is named.
    """
    if not (os.environ.get("MLFLOW_TRACKING_URI") or args.mlflow_run_id or args.mlflow_experiment):
        return None
    import mlflow

    if args.mlflow_experiment and not args.mlflow_run_id:
        mlflow.set_experiment(args.mlflow_experiment)
    with mlflow.start_run(
        run_id=args.mlflow_run_id, run_name=None if args.mlflow_run_id else run_name
    ) as run:
        for name, body in report["models"].items():
            mlflow.log_metrics(
                {f"eval/{name}/{k}": float(v) for k, v in body["metrics"].items() if v is not None}
            )
        mlflow.log_dict(report, artifact)
        return str(run.info.run_id)


def main(args: EvaluateArgs, completers: dict[str, Completer] | None = None) -> dict[str, Any]:
    """Evaluate the tuned (and base) model; return the report (also written and logged).

    `completers` replaces model loading (``{"tuned": fn, "base": fn}``), for tests and for
    evaluating an endpoint through the same scoring.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        local_dir(args.tokenizer or args.model, what="--tokenizer" if args.tokenizer else "--model")
    )
    cases = build_cases(
        tokenizer, load_conversations(args.data), enable_thinking=args.enable_thinking
    )[: args.max_cases]
    if not cases:
        raise ValueError(f"{args.data}: no assistant turn to evaluate")
    models: dict[str, Any] = {}  # loaded once, for generation and for --pairs
    if completers is None:
        paths = {"base": args.base_model, "tuned": args.model}
        models = {name: load_model(path) for name, path in paths.items() if path}
        completers = {
            name: hf_completer(
                model, tokenizer, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size
            )
            for name, model in models.items()
        }
    report: dict[str, Any] = {
        "data": str(args.data),
        "models": {},
        "paths": {"base": args.base_model, "tuned": args.model},
        "generation": {
            "max_new_tokens": args.max_new_tokens,
            "enable_thinking": args.enable_thinking,
            "greedy": True,
        },
    }
    for name, complete in completers.items():
        report["models"][name] = evaluate_completer(complete, cases)
    if args.pairs is not None:
        from training.preference_eval import load_pairs, rank_pairs

        records = load_pairs(args.pairs)
        for name, path in report["paths"].items():
            if path and name in report["models"]:
                model = models.get(name) or load_model(path)
                ranked = rank_pairs(model, tokenizer, records, enable_thinking=args.enable_thinking)
                body = report["models"][name]
                body["preference"] = ranked
                body["metrics"].update(
                    {k: ranked[k] for k in ("preference_accuracy", "preference_margin")}
                )
    report["mlflow_run_id"] = log_to_mlflow(report, args)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.output.with_name(f".{args.output.name}.tmp")
        tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, args.output)
    return report


parse_args = core_cli.args_parser(EvaluateArgs, __doc__, module="training.evaluate")


def cli(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = main(args)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"evaluate failed: {e}", file=sys.stderr)
        return 2
    print(format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
