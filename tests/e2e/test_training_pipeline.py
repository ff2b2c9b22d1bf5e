"""The training core end to end on the CPU: synthetic data -> prepare -> train -> export ->
evaluate -> reload and generate, with the run tracked on a real MLflow server.

One module-scoped pipeline run feeds every assertion, so the suite pays for training once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from inference.parsing import parse_completion
from training import evaluate, export, prepare, synthetic, train
from training.config import load_config
from training.tiny import TinyShape, save_tiny

CONFIG = Path(__file__).resolve().parents[2] / "training" / "configs" / "tiny-cpu.yaml"
STEPS = 300
# Three tools, at most two offered per conversation, no filler: a set a 2-layer, 64-wide model
# learns in a few hundred steps (the full synthetic catalogue needs far more steps than CI has).
EASY = {"tools": ["get_weather", "get_time", "convert_currency"], "max_tools": 2, "mean_tokens": 0}


@dataclass
class Pipeline:
    workdir: Path
    stats: dict[str, Any]
    result: train.TrainResult
    export_dir: Path
    report: dict[str, Any]
    eval_data: Path
    tracking_uri: str


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str) -> Pipeline:
    work = tmp_path_factory.mktemp("pipeline")
    base = save_tiny(work / "base", TinyShape(hidden_size=64, num_hidden_layers=2))
    raw = synthetic.write(work / "raw.jsonl", synthetic.generate(1500, seed=0, **EASY))
    stats = prepare.main(
        prepare.PrepareArgs(
            input=raw,
            output=work / "data",
            tokenizer=str(base),
            max_length=2048,
            eval_fraction=0.02,
            quiet=True,
        )
    )
    config = load_config(
        CONFIG,
        [
            f"output_dir={work / 'run'}",
            f"model.name_or_path={base}",
            f"data.path={work / 'data'}",
            f"max_steps={STEPS}",
            f"mlflow.tracking_uri={mlflow_server}",
            "mlflow.experiment=e2e",
            "mlflow.log_system_metrics=false",
        ],
    )
    result = train.main(config)
    assert result.checkpoint_path is not None
    exported = export.main(
        result.checkpoint_path,
        str(work / "export"),
        base_model=str(base),
        mlflow_run_id=result.run_id,
        tracking_uri=mlflow_server,
    )
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_server
    try:
        report = evaluate.main(
            evaluate.EvaluateArgs(
                model=exported.local_dir,
                base_model=str(base),
                data=work / "data" / prepare.EVAL,
                max_new_tokens=64,
                batch_size=16,
                max_cases=24,
                mlflow_run_id=result.run_id,
                output=work / "report.json",
            )
        )
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    return Pipeline(
        work, stats, result, Path(exported.local_dir), report, work / "data" / prepare.EVAL,
        mlflow_server,
    )  # fmt: skip


def test_training_loss_falls(pipeline: Pipeline) -> None:
    losses = pipeline.result.losses
    assert len(losses) == STEPS
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first, (first, last)


def test_tool_call_accuracy_rises_over_the_untrained_model(pipeline: Pipeline) -> None:
    base = pipeline.report["models"]["base"]["metrics"]
    tuned = pipeline.report["models"]["tuned"]["metrics"]
    # Not parse_validity or no_call_accuracy alone: a model that never calls a tool aces those.
    assert base["function_name_accuracy"] == 0.0
    assert tuned["function_name_accuracy"] >= 0.5, tuned
    # The calls it makes are schema-valid (required present, nothing unexpected, right types);
    # copying exact values out of the prompt takes this tiny model more steps than CI affords.
    assert tuned["arguments_required"] == tuned["arguments_types"] == 1.0, tuned
    assert tuned["accuracy"] > base["accuracy"], (base, tuned)


def test_run_is_tracked_with_metrics_eval_and_exported_model(pipeline: Pipeline) -> None:
    client = MlflowClient(pipeline.tracking_uri)
    run = client.get_run(pipeline.result.run_id)
    assert len(client.get_metric_history(run.info.run_id, "loss")) == STEPS
    assert "eval/tuned/function_name_accuracy" in run.data.metrics
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model", "eval"} <= top
    model_files = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model.safetensors", "tokenizer.json", "chat_template.jinja"} <= model_files


def test_export_reloads_and_generates_a_parseable_tool_call(pipeline: Pipeline) -> None:
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(pipeline.export_dir)
    model = AutoModelForCausalLM.from_pretrained(pipeline.export_dir).eval()
    records = [json.loads(line) for line in pipeline.eval_data.read_text().splitlines()]
    calls = 0
    for record in records:
        messages = record["messages"]
        cut = next(
            (i for i, m in enumerate(messages) if m["role"] == "assistant" and m.get("tool_calls")),
            None,
        )
        if cut is None:
            continue
        prompt = tokenizer.apply_chat_template(
            messages[:cut], tools=record["tools"], add_generation_prompt=True, tokenize=False
        )
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=64, do_sample=False)
        text = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=False)
        parsed = parse_completion(text, record["tools"])
        calls += bool(parsed.tool_calls and not parsed.errors)
        if calls >= 3:
            break
    assert calls >= 3, "the exported model should emit valid tool calls for held-out prompts"


def test_exported_model_served_locally_answers_the_endpoint_clients_request(
    pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The exported model behind `transformers serve` (the local stand-in for LMI), asked
    through `inference.client.EndpointClient` exactly as the deployed fraud endpoint would be:
    same client, same ServingConfig defaults, same body (the shim drops only vLLM's top_k)."""
    import json

    from harness.sagemaker_runtime import LocalRuntime
    from harness.servers import transformers_serve

    from config.loader import CONFIG_DIR, load_file
    from inference.client import EndpointClient, EndpointError, Sampling, build_chat_request

    fraud, _ = load_file(CONFIG_DIR / "fraud.yaml")
    assert fraud is not None
    assert fraud.endpoints is not None
    item = fraud.endpoints.on("sagemaker")[0]
    endpoint_name = fraud.naming.resource(item.name)
    records = [json.loads(line) for line in pipeline.eval_data.read_text().splitlines()]
    greedy = Sampling(temperature=0.0, top_p=1.0, max_tokens=64, seed=0)
    valid = tried = 0
    with transformers_serve(pipeline.export_dir, tmp_path_factory.mktemp("serve")) as url:
        runtime = LocalRuntime(url, model=str(pipeline.export_dir))
        client = EndpointClient.for_serving(
            endpoint_name, item.serving_config(), runtime_client=runtime
        )
        for record in records:
            messages = record["messages"]
            cut = next(
                (
                    i
                    for i, m in enumerate(messages)
                    if m["role"] == "assistant" and m.get("tool_calls")
                ),
                None,
            )
            if cut is None:
                continue
            tried += 1
            try:
                result = client.chat(messages[:cut], tools=record["tools"], sampling=greedy)
            except EndpointError:  # transformers serve answers 500 on a malformed <tool_call>
                continue
            valid += bool(result.tool_calls and not result.errors)
            if valid >= 3 or tried >= 12:
                break
    # What reached the "endpoint" is what build_chat_request makes for a deployed LMI endpoint.
    first = runtime.payloads[0]
    assert first == build_chat_request(
        first["messages"], tools=first["tools"], thinking=item.serving_config().thinking_default,
        sampling=greedy,
    )  # fmt: skip
    assert first["top_k"] == 20  # vLLM's dialect, as LMI receives it
    assert valid >= 2, f"{valid} valid tool calls in {tried} requests"
