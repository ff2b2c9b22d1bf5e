"""BFCL evaluation: ground truth scores 100%, perturbations score as BFCL's AST checker says.

The fixture records are written here in BFCL's documented shapes (JSON Lines ``{id, question,
function}`` and ``possible_answer/{id, ground_truth}``); BFCL's own files are only read by the
slow tests, after `make bfcl-data`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from inference.scoring import OneOf
from training.bfcl import (
    AST_CATEGORIES,
    BfclArgs,
    BfclCase,
    endpoint_completer,
    format_table,
    load_category,
    main,
)
from training.bfcl import score_case as bfcl_score

REPO = Path(__file__).resolve().parents[2]


def _fn(name: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    params = {"type": "dict", "properties": properties, "required": required}
    return {"name": name, "description": f"{name} tool.", "parameters": params}


AREA = _fn(
    "geometry.area",
    {"base": {"type": "integer"}, "height": {"type": "float"}, "unit": {"type": "string"}},
    ["base", "height"],
)
PLAY = _fn(
    "spotify.play", {"artist": {"type": "string"}, "duration": {"type": "integer"}}, ["artist"]
)
ROUTE = _fn(
    "route",
    {
        "stops": {"type": "array", "items": {"type": "string"}},
        "options": {"type": "dict", "properties": {"avoid": {"type": "string"}}},
        "fast": {"type": "boolean"},
    },
    ["stops"],
)
WEATHER = _fn("weather", {"city": {"type": "string"}}, ["city"])

CASES: dict[str, list[tuple[str, list[dict[str, Any]], list[dict[str, Any]] | None]]] = {
    "simple_python": [
        (
            "Area of base 10, height 5?",
            [AREA],
            [{"geometry.area": {"base": [10], "height": [5.0], "unit": ["units", ""]}}],
        ),
        (
            "Route via New York and Los Angeles avoiding tolls.",
            [ROUTE],
            [
                {
                    "route": {
                        "stops": [["New York", "Los Angeles"], ["NYC", "LA"]],
                        "options": [{"avoid": ["tolls"]}, ""],
                        "fast": ["", False],
                    }
                }
            ],
        ),
    ],
    "multiple": [
        ("Weather in Paris?", [AREA, WEATHER], [{"weather": {"city": ["Paris", "Paris, France"]}}])
    ],
    "parallel": [
        (
            "Play Taylor Swift for 20 and Maroon 5 for 15.",
            [PLAY],
            [
                {"spotify.play": {"artist": ["Taylor Swift"], "duration": [20]}},
                {"spotify.play": {"artist": ["Maroon 5"], "duration": [15]}},
            ],
        )
    ],
    "parallel_multiple": [
        (
            "Weather in Rome and play Adele.",
            [WEATHER, PLAY],
            [
                {"weather": {"city": ["Rome"]}},
                {"spotify.play": {"artist": ["Adele"], "duration": [""]}},
            ],
        )
    ],
    "irrelevance": [("Tell me a joke.", [WEATHER], None)],
    "live_simple": [("wetter in Berlin", [WEATHER], [{"weather": {"city": ["Berlin"]}}])],
}


@pytest.fixture(scope="module")
def bfcl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bfcl")
    (root / "possible_answer").mkdir()
    for category, items in CASES.items():
        rows, answers = [], []
        for k, (question, functions, truth) in enumerate(items):
            case_id = f"{category}_{k}"
            question_turns = [[{"role": "user", "content": question}]]
            rows.append({"id": case_id, "question": question_turns, "function": functions})
            if truth is not None:
                answers.append({"id": case_id, "ground_truth": truth})
        _write(root / f"BFCL_v4_{category}.json", rows)
        if answers:
            _write(root / "possible_answer" / f"BFCL_v4_{category}.json", answers)
    return root


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


# --- ground truth as completions -----------------------------------------------------------


def _first(options: list[Any]) -> tuple[bool, Any]:
    """The first acceptable value that is not "omit", if any."""
    present = [o for o in options if o != ""]
    return (True, _plain(present[0])) if present else (False, None)


def _plain(value: Any) -> Any:
    """An acceptable value with its nested acceptable-value lists (dicts) resolved."""
    if isinstance(value, dict):
        return {k: v for k, (ok, v) in ((k, _first(o)) for k, o in value.items()) if ok}
    if isinstance(value, list):
        return [_plain(v) if isinstance(v, dict) else v for v in value]
    return value


def call_block(name: str, arguments: dict[str, Any]) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def truth_calls(case: BfclCase) -> list[tuple[str, dict[str, Any]]]:
    calls = []
    for call in case.expected or []:
        arguments = {}
        for key, value in call["arguments"].items():
            ok, picked = _first(list(value.values) if isinstance(value, OneOf) else [value])
            if ok:
                arguments[key] = picked
        calls.append((call["name"], arguments))
    return calls


def truth_completion(case: BfclCase) -> str:
    if case.expected is None:  # irrelevance: answer in words; relevance: any call
        if "irrelevance" in case.category:
            return "I cannot do that with these tools.<|im_end|>"
        return call_block(case.tools[0]["function"]["name"], {}) + "<|im_end|>"
    return "\n".join(call_block(n, a) for n, a in truth_calls(case)) + "<|im_end|>"


def _cases(bfcl_dir: Path) -> list[BfclCase]:
    return [c for cat in AST_CATEGORIES for c in load_category(bfcl_dir, cat)]


def test_ground_truth_scores_everything(bfcl_dir: Path):
    cases = _cases(bfcl_dir)
    assert {c.category for c in cases} == set(CASES)
    assert all(c.id.rsplit("_", 1)[0] == c.category for c in cases)  # each from its own file
    for case in cases:
        result = bfcl_score(case, truth_completion(case))
        assert result["passed"], (case.id, result["mismatches"])


def test_function_docs_are_json_schema_with_bfcls_hint(bfcl_dir: Path):
    (case,) = load_category(bfcl_dir, "simple_python", 1)
    spec = case.tools[0]["function"]
    assert spec["parameters"]["type"] == "object"
    assert spec["parameters"]["properties"]["height"]["type"] == "number"
    assert spec["description"].endswith("Note that the provided function is in Python 3 syntax.")


def _case(bfcl_dir: Path, category: str, k: int = 0) -> BfclCase:
    return load_category(bfcl_dir, category)[k]


def _with(case: BfclCase, **changes: Any) -> str:
    (name, arguments), *rest = truth_calls(case)
    arguments = {k: v for k, v in {**arguments, **changes}.items() if v is not _DROP}
    blocks = [call_block(name, arguments)] + [call_block(n, a) for n, a in rest]
    return "\n".join(blocks)


_DROP = object()


@pytest.mark.parametrize(
    ("changes", "passed"),
    [
        ({"base": 11}, False),  # wrong value
        ({"height": _DROP}, False),  # required argument missing
        ({"colour": "red"}, False),  # extra argument
        ({"base": "10"}, False),  # wrong type
        ({"base": 10.0}, False),  # a float where the schema says integer
        ({"height": 5}, True),  # an int where it says float: Python converts
        ({"unit": _DROP}, True),  # "" among the acceptable values: may be omitted
        ({"unit": "Units "}, True),  # strings compare standardised
        ({"unit": "cm"}, False),  # an optional argument given a value outside the set
    ],
)
def test_simple_perturbations(bfcl_dir: Path, changes: dict[str, Any], passed: bool):
    case = _case(bfcl_dir, "simple_python")
    assert bfcl_score(case, _with(case, **changes))["passed"] is passed


@pytest.mark.parametrize(
    ("changes", "passed"),
    [
        ({"stops": ["nyc", "la"]}, True),  # the second acceptable list, case-insensitively
        ({"stops": ["Los Angeles", "New York"]}, False),  # list order matters
        ({"stops": ["New York", 3]}, False),  # items of the wrong type
        ({"options": {"avoid": "Tolls"}}, True),  # dict values from their own acceptable sets
        ({"options": {"avoid": "ferries"}}, False),
        ({"options": {"avoid": "tolls", "via": "x"}}, False),  # a key the answer lacks
        ({"options": _DROP}, True),
        ({"fast": 0}, False),  # 0 is not a boolean
    ],
)
def test_nested_value_perturbations(bfcl_dir: Path, changes: dict[str, Any], passed: bool):
    case = _case(bfcl_dir, "simple_python", 1)
    assert bfcl_score(case, _with(case, **changes))["passed"] is passed


def test_parallel_order_is_free_but_count_is_not(bfcl_dir: Path):
    case = _case(bfcl_dir, "parallel")
    blocks = [call_block(n, a) for n, a in truth_calls(case)]
    assert bfcl_score(case, "\n".join(reversed(blocks)))["passed"]
    assert not bfcl_score(case, blocks[0])["passed"]
    assert not bfcl_score(case, "\n".join([*blocks, blocks[0]]))["passed"]


def test_multiple_needs_the_right_function(bfcl_dir: Path):
    case = _case(bfcl_dir, "multiple")
    assert not bfcl_score(case, call_block("geometry.area", {"base": 1, "height": 2}))["passed"]


def test_irrelevance_passes_only_without_a_call(bfcl_dir: Path):
    case = _case(bfcl_dir, "irrelevance")
    assert not bfcl_score(case, call_block("weather", {"city": "Paris"}))["passed"]
    broken = bfcl_score(case, "<tool_call>{not json</tool_call>")
    assert broken["passed"]  # BFCL: no decodable call is no call
    assert broken["parse_failure"]


def test_a_malformed_call_fails_a_call_case(bfcl_dir: Path):
    case = _case(bfcl_dir, "live_simple")
    (name, arguments), *_ = truth_calls(case)
    result = bfcl_score(case, call_block(name, arguments) + '\n<tool_call>{"name": </tool_call>')
    assert not result["passed"]
    assert result["parse_failure"]


def _completers(bfcl_dir: Path) -> dict[str, Any]:
    """A base that never calls and a tuned model that answers the ground truth."""
    by_prompt = {c.messages[-1]["content"]: truth_completion(c) for c in _cases(bfcl_dir)}

    def perfect(prompts: Any) -> list[str]:
        return [next(v for k, v in by_prompt.items() if k in p) for p in prompts]

    def silent(prompts: Any) -> list[str]:
        return ["No.<|im_end|>" for _ in prompts]

    return {"base": silent, "tuned": perfect}


def test_main_reports_each_category_side_by_side(
    bfcl_dir: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    args = BfclArgs(model=str(tiny_model_dir), data=bfcl_dir, output=tmp_path / "bfcl.json")
    report = main(args, completers=_completers(bfcl_dir))
    assert report["mlflow_run_id"] is None
    tuned, base = report["models"]["tuned"], report["models"]["base"]
    assert all(m["accuracy"] == 1.0 for m in tuned["categories"].values())
    assert base["categories"]["irrelevance"]["accuracy"] == 1.0
    assert base["categories"]["simple_python"] == {
        "accuracy": 0.0,
        "cases": 2,
        "calls": 0,
        "parse_failures": 0,
    }
    assert tuned["categories"]["parallel"]["calls"] == 2
    assert json.loads((tmp_path / "bfcl.json").read_text())["categories"] == list(CASES)
    table = format_table(report)
    assert "simple_python" in table
    assert "tuned acc" in table


def test_logged_to_mlflow(
    bfcl_dir: Path, tiny_model_dir: Path, tmp_path: Path, mlflow_server: str, monkeypatch
):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    args = BfclArgs(model=str(tiny_model_dir), data=bfcl_dir, mlflow_experiment="bfcl-test")
    report = main(args, completers=_completers(bfcl_dir))
    client = MlflowClient(mlflow_server)
    metrics = client.get_run(report["mlflow_run_id"]).data.metrics
    assert metrics["eval/tuned/bfcl/parallel/accuracy"] == 1.0
    assert metrics["eval/base/bfcl/simple_python/cases"] == 2
    assert metrics["eval/tuned/bfcl/overall_accuracy"] == 1.0
    client.download_artifacts(report["mlflow_run_id"], "eval", str(tmp_path))
    logged = json.loads((tmp_path / "eval" / "bfcl_report.json").read_text())
    assert logged["categories"] == list(CASES)


def test_prompt_uses_the_product_template(bfcl_dir: Path, tiny_tokenizer: Any):
    from training.bfcl import prompt

    text = prompt(tiny_tokenizer, _case(bfcl_dir, "simple_python"))
    assert '"type": "number"' in text
    assert '"dict"' not in text
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


# --- BFCL's own data (network once, for `make bfcl-data`) -----------------------------------

FIRST_N = 40  # the first cases of each file; later ones include BFCL's few unanswerable truths


@pytest.fixture(scope="module")
def real_bfcl() -> Path:
    subprocess.run(["make", "--no-print-directory", "bfcl-data"], cwd=REPO, check=True)
    from training.bfcl_data import default_data_dir

    return default_data_dir()


@pytest.mark.slow
def test_bfcl_ground_truth_scores_everything_on_the_real_files(real_bfcl: Path):
    for category in AST_CATEGORIES:
        for case in load_category(real_bfcl, category, FIRST_N):
            assert case.id.startswith(f"{category}_")
            result = bfcl_score(case, truth_completion(case))
            assert result["passed"], (case.id, result["mismatches"])


@pytest.mark.slow
def test_tiny_model_end_to_end_on_real_cases(real_bfcl: Path, tiny_model_dir: Path, tmp_path):
    categories = "simple_python,multiple,parallel,irrelevance"
    args = BfclArgs(
        model=str(tiny_model_dir),
        base_model=str(tiny_model_dir),
        data=real_bfcl,
        categories=categories,
        max_cases=6,
        max_new_tokens=24,
        output=tmp_path / "bfcl.json",
    )
    report = main(args)
    for name in ("base", "tuned"):
        per = report["models"][name]["categories"]
        assert list(per) == categories.split(",")
        assert all(m["cases"] == 6 for m in per.values())
    print(format_table(report))


def test_cli_refuses_unknown_categories_and_missing_data(tmp_path: Path, capsys, tiny_model_dir):
    from training.bfcl import cli

    with pytest.raises(SystemExit) as exit_info:
        cli(["--model", str(tiny_model_dir), "--categories", "simple_java"])
    assert exit_info.value.code == 2
    assert "unknown categories ['simple_java']" in capsys.readouterr().err
    assert cli(["--model", str(tiny_model_dir), "--data", str(tmp_path / "none")]) == 2
    assert "run `make bfcl-data`" in capsys.readouterr().err


# --- a deployed endpoint: the real EndpointClient under botocore's Stubber -------------------


def _openai_answer(case: BfclCase, *, broken: bool = False) -> dict[str, Any]:
    """What LMI's vLLM chat service returns for the ground truth: calls parsed by its Hermes
    parser, arguments as a JSON string (one left broken when asked)."""
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {
                "name": name,
                "arguments": '{"oops": ' if broken else json.dumps(arguments),
            },
        }
        for i, (name, arguments) in enumerate(truth_calls(case))
    ]
    message: dict[str, Any] = {"role": "assistant", "content": None if calls else "I cannot."}
    if calls:
        message["tool_calls"] = calls
    return {
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def _stubbed_endpoint(answers: list[dict[str, Any]]) -> Any:
    import io

    import boto3
    from botocore.response import StreamingBody
    from botocore.stub import Stubber

    from inference.client import EndpointClient

    runtime = boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    stubber = Stubber(runtime)
    for answer in answers:
        raw = json.dumps(answer).encode()
        stubber.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(raw), len(raw)), "ContentType": "application/json"},
        )
    stubber.activate()
    return EndpointClient("bfcl-endpoint", runtime_client=runtime)


def test_an_endpoint_is_scored_by_the_same_rules(bfcl_dir: Path, monkeypatch) -> None:
    """--endpoint sends each case (messages + JSON Schema tools) through inference.client and
    scores what the server parsed, turned back into completion text, with BFCL's rules."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    categories = ("simple_python", "parallel", "irrelevance")
    cases = [c for cat in categories for c in load_category(bfcl_dir, cat)]
    args = BfclArgs(endpoint="bfcl-endpoint", data=bfcl_dir, categories=",".join(categories))
    client = _stubbed_endpoint([_openai_answer(c) for c in cases])
    report = main(args, completers={"endpoint": endpoint_completer(args, client)})
    scored = report["models"]["endpoint"]["categories"]
    assert all(scored[c]["accuracy"] == 1.0 for c in categories), scored
    assert report["paths"]["endpoint"] == "bfcl-endpoint"


def test_a_broken_argument_string_from_the_endpoint_is_a_parse_failure(bfcl_dir: Path) -> None:
    (case,) = load_category(bfcl_dir, "simple_python", 1)
    args = BfclArgs(endpoint="bfcl-endpoint", data=bfcl_dir, categories="simple_python")
    client = _stubbed_endpoint([_openai_answer(case, broken=True)])
    (completion,) = endpoint_completer(args, client)([case])
    assert bfcl_score(case, completion)["passed"] is False
    # The text the scorer read holds the broken arguments as the server sent them.
    assert '"arguments": {"oops": ' in completion


def test_model_or_endpoint_exactly_one(bfcl_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"--model .* or --endpoint"):
        BfclArgs(data=bfcl_dir)
    with pytest.raises(ValueError, match=r"--model .* or --endpoint"):
        BfclArgs(model="m", endpoint="e", data=bfcl_dir)
    with pytest.raises(ValueError, match="go with --model"):
        BfclArgs(endpoint="e", base_model="b", data=bfcl_dir)
