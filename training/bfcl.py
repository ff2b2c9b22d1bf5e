"""A tuned model on BFCL's AST categories, with BFCL's own data and scoring rules, base model side
by side: the number the field reports, measured through this product's template and parser.

    make bfcl-data      # once: the pinned bfcl-eval wheel's data/ into .cache/bfcl/<version>/
    python -m training.bfcl --model runs/export --base-model runs/tiny-qwen3 \\
        --categories simple_python,multiple,parallel,irrelevance --max-cases 50 --output bfcl.json

Each case's question and function docs (BFCL's Python hint added to each description, as its
handlers do) go through the model's own chat template; the completion is read by
`inference.parsing` and scored by `inference.scoring` with BFCL's rules (``bfcl=True``): acceptable
value sets, ``""`` = may be omitted, its string standardisation and type checks, parallel calls in
any order. ``irrelevance`` passes when no call is made (a malformed call counts as none, as in
BFCL), ``live_relevance`` when at least one is.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import cli as core_cli
from core.aws_region import region_option, resolve_region
from inference.client import EndpointError
from inference.parsing import normalize_tools, parse_completion
from inference.scoring import bfcl_expected, score_calls
from training.bfcl_data import BFCL_VERSION, default_data_dir
from training.data.conversation import Conversation, Message, check_role
from training.data.render import render_text
from training.evaluate import SYNTAX_ERRORS, hf_completer, load_model, log_to_mlflow
from training.model.dirs import local_dir

AST_CATEGORIES = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "irrelevance",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "live_irrelevance",
    "live_relevance",
)
PYTHON_HINT = " Note that the provided function is in Python 3 syntax."  # BFCL's own wording


@dataclass(frozen=True)
class BfclArgs:
    model: str | None = field(
        default=None, metadata={"help": "fine-tuned model folder (merged weights or LoRA)"}
    )
    endpoint: str | None = field(
        default=None,
        metadata={"help": "or a deployed SageMaker endpoint, called through inference.client"},
    )
    region: str | None = region_option("the endpoint's")
    base_model: str | None = field(default=None, metadata={"help": "base model to compare with"})
    tokenizer: str | None = field(default=None, metadata={"help": "tokenizer (default: --model)"})
    data: Path = field(
        default=default_data_dir(),
        metadata={
            "help": f"BFCL data folder (default: make bfcl-data's, bfcl-eval {BFCL_VERSION})"
        },
    )
    categories: str = field(
        default=",".join(AST_CATEGORIES),
        metadata={"help": "comma-separated AST categories (those absent from --data are skipped)"},
    )
    max_cases: int | None = field(default=None, metadata={"help": "first N cases per category"})
    max_new_tokens: int = field(default=256, metadata={"help": "generation budget per case"})
    batch_size: int = field(default=8, metadata={"help": "prompts generated together"})
    enable_thinking: bool = field(
        default=False, metadata={"help": "render prompts with thinking on (--enable-thinking)"}
    )
    output: Path | None = field(default=None, metadata={"help": "write the JSON report here"})
    mlflow_run_id: str | None = field(default=None, metadata={"help": "log into this MLflow run"})
    mlflow_experiment: str | None = field(
        default=None, metadata={"help": "or start a run in this experiment"}
    )

    def __post_init__(self) -> None:
        if (self.model is None) == (self.endpoint is None):
            raise ValueError("give --model (a local model folder) or --endpoint (a deployed one)")
        if self.endpoint is not None and (self.base_model or self.tokenizer):
            raise ValueError("--base-model and --tokenizer go with --model, not --endpoint")
        unknown = set(self.category_list) - set(AST_CATEGORIES)
        if unknown:
            known = ", ".join(AST_CATEGORIES)
            raise ValueError(f"unknown categories {sorted(unknown)}; AST categories: {known}")

    @property
    def category_list(self) -> list[str]:
        return [c.strip() for c in self.categories.split(",") if c.strip()]


@dataclass(frozen=True)
class BfclCase:
    """One BFCL entry: the chat so far, the offered tools (JSON Schema) and the ground truth."""

    id: str
    category: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    expected: list[dict[str, Any]] | None  # None: no possible answer (relevance categories)


# --- data -------------------------------------------------------------------------------------


def _json_lines(path: Path) -> list[dict[str, Any]]:
    """BFCL's ``.json`` files are JSON Lines."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _category_file(folder: Path, category: str) -> Path | None:
    """``BFCL_v<N>_<category>.json``, the newest N; exactly that category (a glob's ``*`` would
    also take ``live_multiple`` for ``multiple``)."""
    pattern = re.compile(rf"BFCL_v(\d+)_{re.escape(category)}\.json")
    found = [
        (int(m.group(1)), p)
        for p in folder.glob("BFCL_v*.json")
        if (m := pattern.fullmatch(p.name))
    ]
    return max(found)[1] if found else None


def _tools(functions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """BFCL's function docs with its Python hint, as JSON Schema tools."""
    hinted = [{**f, "description": f.get("description", "") + PYTHON_HINT} for f in functions]
    return [{"type": "function", "function": f} for f in normalize_tools(hinted)]


def load_category(data: Path, category: str, limit: int | None = None) -> list[BfclCase]:
    """The first `limit` cases of `category` (empty when the data has no such file)."""
    path = _category_file(data, category)
    if path is None:
        return []
    records = _json_lines(path)[:limit]
    answers_path = _category_file(data / "possible_answer", category)
    answers = (
        {a["id"]: a["ground_truth"] for a in _json_lines(answers_path)} if answers_path else {}
    )
    if "relevance" not in category and not answers:
        raise FileNotFoundError(f"{data}/possible_answer: no ground truth for {category}")
    return [
        BfclCase(
            id=r["id"],
            category=category,
            messages=list(r["question"][0]),  # AST categories are single-turn
            tools=_tools(r["function"]),
            expected=bfcl_expected(answers[r["id"]]) if r["id"] in answers else None,
        )
        for r in records
    ]


def prompt(tokenizer: Any, case: BfclCase, *, enable_thinking: bool = False) -> str:
    """The case as the product renders any conversation: its template, its tools section."""
    messages = tuple(Message(check_role(m["role"]), m["content"]) for m in case.messages)
    conv = Conversation(messages, tuple(case.tools), meta={"id": case.id})  # a prompt: no answer
    return render_text(tokenizer, conv, enable_thinking=enable_thinking, add_generation_prompt=True)


# --- scoring ----------------------------------------------------------------------------------


def score_case(case: BfclCase, completion: str) -> dict[str, Any]:
    """BFCL's verdict on one completion, with what was called and why it failed."""
    parsed = parse_completion(completion, None)  # BFCL checks types itself; so does the scorer
    calls = parsed.tool_calls
    parse_failure = any(e.kind in SYNTAX_ERRORS for e in parsed.errors)
    mismatches: list[str] = []
    if "irrelevance" in case.category:
        passed = not calls
    elif case.expected is None:  # relevance: any call will do
        passed = bool(calls)
    else:
        score = score_calls(calls, case.expected, case.tools, bfcl=True)
        passed, mismatches = score.exact and not parse_failure, score.mismatches
    return {
        "id": case.id,
        "passed": passed,
        "calls": [c.to_dict() for c in calls],
        "parse_failure": parse_failure,
        "mismatches": mismatches,
        "completion": completion,
    }


def category_metrics(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "accuracy": sum(r["passed"] for r in results) / len(results) if results else None,
        "cases": len(results),
        "calls": sum(len(r["calls"]) for r in results),
        "parse_failures": sum(r["parse_failure"] for r in results),
    }


def evaluate_model(
    complete: Callable[[Sequence[Any]], list[str]],
    prompts: Mapping[str, Sequence[Any]],
    cases: Mapping[str, list[BfclCase]],
) -> dict[str, Any]:
    """Every category for one model: per-category metrics, flat metrics for MLflow, and cases.

    `prompts` are what `complete` takes: rendered prompts for a local model, the cases
    themselves for an endpoint (whose server renders them with the same template)."""
    categories: dict[str, Any] = {}
    details: dict[str, Any] = {}
    for category, items in cases.items():
        results = [
            score_case(c, t) for c, t in zip(items, complete(prompts[category]), strict=True)
        ]
        categories[category] = category_metrics(results)
        details[category] = results
    accuracies = [m["accuracy"] for m in categories.values() if m["accuracy"] is not None]
    overall = sum(accuracies) / len(accuracies) if accuracies else None  # BFCL: unweighted mean
    flat = {f"bfcl/{c}/{k}": v for c, m in categories.items() for k, v in m.items()}
    return {
        "categories": categories,
        "overall_accuracy": overall,
        "metrics": {**flat, "bfcl/overall_accuracy": overall},
        "cases": details,
    }


# --- report -----------------------------------------------------------------------------------


def format_table(report: Mapping[str, Any]) -> str:
    """Per category: accuracy, cases, calls made and parse failures, one column per model."""
    models = list(report["models"])
    head = f"{'category':<24}{'cases':>6}" + "".join(
        f"{f'{m} acc':>11}{f'{m} calls':>12}{f'{m} parse!':>13}" for m in models
    )
    rows = [head]
    for category in report["categories"]:
        per = [report["models"][m]["categories"][category] for m in models]
        cells = "".join(
            f"{'-' if p['accuracy'] is None else format(p['accuracy'], '.3f'):>11}"
            f"{p['calls']:>12}{p['parse_failures']:>13}"
            for p in per
        )
        rows.append(f"{category:<24}{per[0]['cases']:>6}{cells}")
    overall = "".join(
        f"{format(report['models'][m]['overall_accuracy'] or 0.0, '.3f'):>11}{'':>25}"
        for m in models
    )
    rows.append(f"{'overall (unweighted)':<24}{'':>6}{overall}")
    rows.append("parse!: completions with a malformed <tool_call> (unclosed, not JSON, no name)")
    return "\n".join(rows)


def endpoint_completer(
    args: BfclArgs, client: Any | None = None
) -> Callable[[Sequence[BfclCase]], list[str]]:
    """Each case through a deployed endpoint (``inference.client``: the server renders the same
    chat template, vLLM's Hermes parser returns the calls), turned back into the completion
    text the local path scores, so both paths meet BFCL's rules in the same scorer."""
    from inference.client import EndpointClient, Sampling

    if client is None:
        client = EndpointClient(args.endpoint or "", region=resolve_region(args.region).name)
    # Greedy, as the local path generates; BFCL scores one answer per case.
    sampling = Sampling(max_tokens=args.max_new_tokens, temperature=0.0)

    def complete(items: Sequence[BfclCase]) -> list[str]:
        return [
            as_completion(
                client.chat(
                    case.messages,
                    tools=case.tools,
                    thinking=args.enable_thinking,
                    sampling=sampling,
                )
            )
            for case in items
        ]

    return complete


def as_completion(result: Any) -> str:
    """An endpoint's answer as Hermes completion text: its content, then each call the server
    parsed as ``<tool_call>{"name", "arguments"}</tool_call>`` with the arguments exactly as
    sent (unvalidated: BFCL checks types itself, and a broken argument string stays broken)."""
    choices = result.raw.get("choices") if isinstance(result.raw, Mapping) else None
    message = choices[0].get("message") if isinstance(choices, list) and choices else None
    if not isinstance(message, Mapping):  # no readable response: what the client made of it
        calls = [(c.name, json.dumps(c.arguments, ensure_ascii=False)) for c in result.tool_calls]
        content = result.text
    else:
        content = message.get("content") if isinstance(message.get("content"), str) else ""
        calls = []
        for call in message.get("tool_calls") or []:
            function = call.get("function", {}) if isinstance(call, Mapping) else {}
            arguments = function.get("arguments", "{}")
            text = arguments if isinstance(arguments, str) else json.dumps(arguments)
            calls.append((str(function.get("name", "")), text))
    parts = [content] if content else []
    parts += [
        f'<tool_call>\n{{"name": {json.dumps(name)}, "arguments": {arguments}}}\n</tool_call>'
        for name, arguments in calls
    ]
    return "\n".join(parts)


def main(
    args: BfclArgs, completers: Mapping[str, Callable[[Sequence[Any]], list[str]]] | None = None
) -> dict[str, Any]:
    """Evaluate the tuned (and base) model on the chosen categories; return the report (also
    written with ``--output`` and logged to MLflow when tracking is on).

    `completers` replaces model loading or the endpoint (``{"tuned": fn, "base": fn}``), for tests.
    """
    if not args.data.is_dir():
        raise FileNotFoundError(f"--data {args.data} is not a folder (run `make bfcl-data`)")
    loaded = {c: load_category(args.data, c, args.max_cases) for c in args.category_list}
    cases = {c: items for c, items in loaded.items() if items}
    if not cases:
        raise ValueError(f"{args.data}: none of {args.category_list} has cases")
    inputs: dict[str, Sequence[Any]]
    if args.endpoint is not None:
        inputs = dict(cases)
        completers = completers or {"endpoint": endpoint_completer(args)}
    else:
        from transformers import AutoTokenizer

        source = args.tokenizer or args.model or ""  # __post_init__: --model or --endpoint
        tokenizer = AutoTokenizer.from_pretrained(
            local_dir(source, what="--tokenizer" if args.tokenizer else "--model")
        )
        inputs = {
            c: [prompt(tokenizer, k, enable_thinking=args.enable_thinking) for k in items]
            for c, items in cases.items()
        }
    if completers is None:
        paths = {"base": args.base_model, "tuned": args.model}
        completers = {
            name: hf_completer(
                load_model(path),
                tokenizer,
                max_new_tokens=args.max_new_tokens,
                batch_size=args.batch_size,
            )
            for name, path in paths.items()
            if path
        }
    report: dict[str, Any] = {
        "bfcl_version": _data_version(args.data),
        "data": str(args.data),
        "categories": list(cases),
        "paths": {"base": args.base_model, "tuned": args.model, "endpoint": args.endpoint},
        "generation": {"max_new_tokens": args.max_new_tokens, "greedy": True},
        "enable_thinking": args.enable_thinking,
        "models": {name: evaluate_model(fn, inputs, cases) for name, fn in completers.items()},
    }
    report["mlflow_run_id"] = log_to_mlflow(
        report, args, run_name="bfcl", artifact="eval/bfcl_report.json"
    )
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return report


def _data_version(data: Path) -> str:
    marker = data / "VERSION"
    return marker.read_text(encoding="utf-8").split("\n")[0] if marker.is_file() else "unknown"


parse_args = core_cli.args_parser(BfclArgs, __doc__, module="training.bfcl")


def cli(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        report = main(args)
    except (ValueError, FileNotFoundError, OSError, RuntimeError, EndpointError) as e:
        print(f"bfcl failed: {e}", file=sys.stderr)
        return 2
    print(format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
