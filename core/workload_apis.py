"""The Kubernetes APIs of the HyperPod operators the platform talks to: group, version, kind and
plural of each custom resource, shared by the job and endpoint builders (training.job.manifest,
inference.hyperpod) and the RBAC the pipeline stack grants on them. Plain strings: the CDK app
imports this in the synth-only environment (no jsonschema, no training packages)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class CustomResource:
    group: str
    version: str
    kind: str
    plural: str


# The HyperPod training operator's job (training/job/schema/, its vendored schema).
HYPERPOD_PYTORCH_JOB = CustomResource(
    "sagemaker.amazonaws.com", "v1", "HyperPodPyTorchJob", "hyperpodpytorchjobs"
)
# The HyperPod inference operator's endpoint (inference/hyperpod/crds/, its vendored schema).
INFERENCE_ENDPOINT_CONFIG = CustomResource(
    "inference.sagemaker.aws.amazon.com",
    "v1",
    "InferenceEndpointConfig",
    "inferenceendpointconfigs",
)
