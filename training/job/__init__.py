"""Training jobs on the platform: HyperPod manifests (``manifest``), validated against the
operator's schema (``crd``), filled from the BU's published parameters (``platform``), run on the
cluster (``cluster``) or as SageMaker Training/Processing jobs (``managed``); ``python -m
training.job`` is the command line (``cli``)."""

from training.job.cli import main, parse_args
from training.job.manifest import JobSpec, JobSpecError, build_manifest

__all__ = ["JobSpec", "JobSpecError", "build_manifest", "main", "parse_args"]
