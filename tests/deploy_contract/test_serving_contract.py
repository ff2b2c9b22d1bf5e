"""Serving: the LMI container environment every example endpoint deploys with selects the async
vLLM handler, which is what parses Qwen3's tool calls into OpenAI ``tool_calls``."""

import pytest
from harness.synthesized_app import CLONED_BU
from harness.template_graph import TemplateGraph

from config.hyperpod_endpoints import hyperpod_endpoint
from config.loader import CONFIG_DIR, config_files
from inference.hyperpod import build_endpoint_config

BUS = (*sorted(p.stem for p in config_files(CONFIG_DIR)), CLONED_BU)
ASYNC_HANDLER = {
    "OPTION_ASYNC_MODE": "true",
    "OPTION_ENTRYPOINT": "djl_python.lmi_vllm.vllm_async_service",
}
TOOL_CALLING = {"OPTION_ENABLE_AUTO_TOOL_CHOICE": "true", "OPTION_TOOL_CALL_PARSER": "hermes"}


def _check(environment: dict[str, str], where: str) -> None:
    assert environment.items() >= ASYNC_HANDLER.items(), where
    assert environment.items() >= TOOL_CALLING.items(), where
    assert "OPTION_ROLLING_BATCH" not in environment, where


def _sagemaker_model_environment(graph: TemplateGraph, endpoint_name: str) -> dict[str, str]:
    """Endpoint -> its EndpointConfig -> the variant's Model -> the container's environment."""
    endpoint = graph.find_one(
        "AWS::SageMaker::Endpoint", lambda p: p.get("EndpointName") == endpoint_name
    )
    config = graph.resource(graph.ref_target(endpoint["Properties"]["EndpointConfigName"]))
    (variant,) = config["Properties"]["ProductionVariants"]
    model = graph.resource(graph.ref_target(variant["ModelName"]))
    environment: dict[str, str] = model["Properties"]["PrimaryContainer"]["Environment"]
    return environment


@pytest.mark.parametrize("bu", BUS)
def test_every_endpoint_runs_the_async_vllm_handler_with_tool_parsing(
    synthesized, config_dir, bu: str
) -> None:
    """Each example endpoint's LMI environment selects the async vLLM handler, with the Hermes
    tool parser, and never OPTION_ROLLING_BATCH.

    Facts, from deepjavalibrary/djl-serving @ d21927c (2026-06-24): "Starting with LMI v17, the
    default mode for running vLLM is async mode ... Async mode will become the default, and
    only supported mode, in an upcoming release" (serving/docs/lmi/user_guides/
    vllm_user_guide.md, "Quick Start Configurations"); an explicit rolling_batch (e.g.
    ``vllm``) returns before async mode is switched on, which LMI does only for ``auto``
    (wlm/src/main/java/ai/djl/serving/wlm/LmiConfigRecommender.java, setRollingBatch); the
    explicit form is ``OPTION_ASYNC_MODE=true`` plus ``OPTION_ENTRYPOINT=djl_python.lmi_vllm.
    vllm_async_service`` (serving/docs/stateful_sessions.md; ModelInfo.java maps
    OPTION_ENTRYPOINT to option.entryPoint); the async service passes
    enable_auto_tool_choice, tool_call_parser and reasoning_parser to vLLM's OpenAIServingChat
    (engines/python/setup/djl_python/lmi_vllm/vllm_async_service.py). The pinned image,
    djl-inference 0.38.0-lmi29.0.0-cu130, is newer than that snapshot's release notes (LMI V20).
    """
    config = synthesized.configs[bu]
    if config.endpoints is None:
        pytest.skip(f"{bu} has no endpoints section")
    graph = TemplateGraph(synthesized.template(bu, "endpoints").to_json())
    for item in config.endpoints.items:
        if item.target == "hyperpod":  # the operator's resource, rendered from the same builder
            spec = hyperpod_endpoint(config_dir / f"{bu}.yaml", item.name, namespace="contract")
            worker = build_endpoint_config(spec)["spec"]["worker"]
            environment = {e["name"]: e["value"] for e in worker["environmentVariables"]}
        else:
            environment = _sagemaker_model_environment(graph, config.naming.resource(item.name))
        _check(environment, f"{bu}/{item.name}")
