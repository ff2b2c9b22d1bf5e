"""evaluate scores tool calls the way BFCL's AST checker does, through the inference parser, and
reports base vs tuned side by side, to a file and to MLflow."""

from __future__ import annotations

import json

import pytest
from data_fixtures import (
    TIME_TOOL,
    WEATHER_TOOL,
    tiny_model,
    tiny_model_dir,
    tiny_tokenizer,
    tool_conversation,
    write_jsonl,
)

from training import synthetic
from training.data.conversation import Message, ToolCall, build
from training.evaluate import (
    EvaluateArgs,
    build_cases,
    cli,
    evaluate_completer,
    format_table,
    hf_completer,
    main,
    reference_completion,
)

WEATHER_CASE = build(
    [
        Message("user", "Weather in Paris in celsius?"),
        Message(
            "assistant", "", None, (ToolCall("get_weather", {"city": "Paris", "unit": "celsius"}),)
        ),
    ],
    [WEATHER_TOOL, TIME_TOOL],
)
CHAT_CASE = build([Message("user", "Hi!"), Message("assistant", "Hello!")], [WEATHER_TOOL])


def call(name: str, arguments: object) -> str:
    body = json.dumps({"name": name, "arguments": arguments})
    return f"<think>\n\n</think>\n\n<tool_call>\n{body}\n</tool_call><|im_end|>"


def metrics_for(conv, completion: str) -> dict:
    cases = build_cases(tiny_tokenizer(), [conv])
    return evaluate_completer(lambda prompts: [completion] * len(prompts), cases)["metrics"]


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        (
            call("get_weather", {"city": "Paris", "unit": "celsius"}),
            {"parse_validity": 1, "function_name_accuracy": 1, "arguments_required": 1,
             "arguments_no_unexpected": 1, "arguments_types": 1, "arguments_values": 1,
             "full_call_accuracy": 1, "accuracy": 1},
        ),
        (  # BFCL compares strings case-insensitively
            call("get_weather", {"unit": "celsius", "city": "paris"}),
            {"full_call_accuracy": 1},
        ),
        (
            call("get_time", {"city": "Paris"}),
            {"parse_validity": 1, "function_name_accuracy": 0, "full_call_accuracy": 0},
        ),
        (
            call("get_weather", {"unit": "celsius"}),
            {"function_name_accuracy": 1, "arguments_required": 0, "full_call_accuracy": 0},
        ),
        (
            call("get_weather", {"city": "Paris", "unit": "celsius", "days": 3}),
            {"arguments_required": 1, "arguments_no_unexpected": 0, "full_call_accuracy": 0},
        ),
        (
            call("get_weather", {"city": 75, "unit": "celsius"}),
            {"arguments_types": 0, "arguments_values": 0, "full_call_accuracy": 0},
        ),
        (
            call("get_weather", {"city": "Paris", "unit": "kelvin"}),
            {"arguments_types": 0, "arguments_values": 0},
        ),
        (
            call("get_weather", {"city": "London", "unit": "celsius"}),
            {"function_name_accuracy": 1, "arguments_types": 1, "arguments_values": 0,
             "full_call_accuracy": 0},
        ),
        (
            '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"\n</tool_call>',
            {"parse_validity": 0, "full_call_accuracy": 0, "arguments_required": None},
        ),
        (
            "<think>\n\n</think>\n\nIt is sunny.<|im_end|>",
            {"parse_validity": 1, "function_name_accuracy": 0, "full_call_accuracy": 0},
        ),
    ],
)  # fmt: skip
def test_call_cases_are_scored_like_bfcl(completion, expected):
    got = metrics_for(WEATHER_CASE, completion)
    assert {k: got[k] for k in expected} == expected
    assert (got["call_cases"], got["no_call_cases"]) == (1, 0)


def test_no_call_cases():
    assert (
        metrics_for(CHAT_CASE, "<think>\n\n</think>\n\nHello!<|im_end|>")["no_call_accuracy"] == 1
    )
    called = metrics_for(CHAT_CASE, call("get_weather", {"city": "Paris"}))
    assert (called["no_call_accuracy"], called["accuracy"], called["predicted_calls"]) == (0, 0, 1)


def test_every_assistant_turn_is_a_case_and_the_reference_scores_perfectly():
    tok = tiny_tokenizer()
    convs = [tool_conversation(), *synthetic.generate(20, seed=9)]
    cases = build_cases(tok, convs)
    assert len(cases) == sum(m.role == "assistant" for c in convs for m in c.messages)
    assert [len(c.expected) for c in cases[:2]] == [2, 0]  # parallel calls, then the answer
    by_prompt = {c.prompt: reference_completion(tok, c) for c in cases}
    result = evaluate_completer(lambda prompts: [by_prompt[p] for p in prompts], cases)
    m = result["metrics"]
    assert m["accuracy"] == m["full_call_accuracy"] == m["no_call_accuracy"] == 1.0
    assert m["call_cases"] > 0
    assert m["no_call_cases"] > 0
    assert m["expected_calls"] == m["predicted_calls"] == sum(len(c.expected) for c in cases)


def test_batched_left_padded_generation_matches_one_by_one():
    tok = tiny_tokenizer()
    model = tiny_model()
    # Prompts of different lengths, so the batch really is padded on the left.
    prompts = [c.prompt for c in build_cases(tok, [WEATHER_CASE, CHAT_CASE, tool_conversation()])]
    assert len({len(p) for p in prompts}) == len(prompts) == 4
    one = hf_completer(model, tok, max_new_tokens=6, batch_size=1)(prompts)
    batched = hf_completer(model, tok, max_new_tokens=6, batch_size=4)(prompts)
    assert one == batched
    assert all(isinstance(t, str) and t for t in one)


def test_side_by_side_report_file_and_table(tmp_path):
    tok = tiny_tokenizer()
    data = write_jsonl(tmp_path / "eval.jsonl", [WEATHER_CASE.to_record(), CHAT_CASE.to_record()])
    cases = build_cases(tok, [WEATHER_CASE, CHAT_CASE])
    oracle = {c.prompt: reference_completion(tok, c) for c in cases}
    args = EvaluateArgs(
        model=str(tiny_model_dir()), data=data, output=tmp_path / "r" / "report.json"
    )
    report = main(
        args,
        completers={
            "base": lambda ps: ["I cannot help.<|im_end|>"] * len(ps),
            "tuned": lambda ps: [oracle[p] for p in ps],
        },
    )
    assert json.loads(args.output.read_text()) == report
    assert report["models"]["tuned"]["metrics"]["accuracy"] == 1.0
    assert report["models"]["base"]["metrics"]["full_call_accuracy"] == 0.0
    assert report["models"]["base"]["metrics"]["no_call_accuracy"] == 1.0
    assert report["mlflow_run_id"] is None  # no tracking URI configured
    table = format_table(report).splitlines()
    assert table[0].split()[:3] == ["metric", "base", "tuned"]
    assert table[7].split()[:3] == ["full_call_accuracy", "0.000", "1.000"]
    # every row says what it counts, and `-` (no case of that kind) is explained
    assert table[7].endswith("call cases: exactly the expected calls, parse valid")
    unfinished = next(row for row in table if row.startswith("unfinished"))
    assert unfinished.endswith("completions cut off at --max-new-tokens (no end token)")
    base_arguments = next(row for row in table if row.startswith("arguments_required"))
    assert base_arguments.split()[1] == "-"
    assert table[-1].startswith("-: no case of that kind")


def test_real_models_logged_to_mlflow(tmp_path, mlflow_server, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    data = write_jsonl(tmp_path / "eval.jsonl", [WEATHER_CASE.to_record(), CHAT_CASE.to_record()])
    args = EvaluateArgs(
        model=str(tiny_model_dir(0)),
        base_model=str(tiny_model_dir(1)),
        data=data,
        max_new_tokens=8,
        mlflow_experiment="evaluate-test",
    )
    report = main(args)
    run = MlflowClient(mlflow_server).get_run(report["mlflow_run_id"])
    for model in ("base", "tuned"):
        assert run.data.metrics[f"eval/{model}/cases"] == 2
        assert f"eval/{model}/parse_validity" in run.data.metrics
        assert len(report["models"][model]["cases"]) == 2
    MlflowClient(mlflow_server).download_artifacts(run.info.run_id, "eval", str(tmp_path))
    logged = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert logged["models"]["tuned"]["metrics"] == report["models"]["tuned"]["metrics"]


def test_cli_prints_the_table(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data = write_jsonl(tmp_path / "eval.jsonl", [WEATHER_CASE.to_record()])
    argv = ["--model", str(tiny_model_dir()), "--data", str(data), "--max-new-tokens", "2",
            "--output", str(tmp_path / "report.json")]  # fmt: skip
    assert cli(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["metric", "tuned"]
    assert (
        json.loads((tmp_path / "report.json").read_text())["models"]["tuned"]["metrics"]["cases"]
        == 1
    )
    assert cli(["--model", str(tiny_model_dir()), "--data", str(tmp_path / "none.jsonl")]) == 2
