"""A valid ``hyperpod`` section for config tests (MIG and whole-GPU groups, two teams)."""

import copy
from typing import Any

DIGEST = "sha256:" + "ab" * 32
HYPERPOD: dict[str, Any] = {
    "admin_roles": ["platform-admin"],
    "dependencies_chart": {"version": "0.1.0", "digest": DIGEST, "source_commit": "c" * 40},
    "gpu_groups": [
        {"name": "mig", "instance_type": "ml.p5en.48xlarge", "count": 1, "mig": "all-1g.18gb"},
        {"name": "whole", "instance_type": "ml.p5.48xlarge", "count": 2},
    ],
    "teams": [{"name": "nlp"}, {"name": "vision"}],
    "quotas": [
        {"team": "nlp", "instance_type": "ml.p5.48xlarge", "gpus": 8},
        {"team": "vision", "instance_type": "ml.p5.48xlarge", "gpus": 8},
        {
            "team": "nlp",
            "instance_type": "ml.p5en.48xlarge",
            "mig": {"profile": "1g.18gb", "count": 28},
        },
    ],
}


def add_hyperpod(raw: dict[str, Any], region: str = "us-east-1") -> dict[str, Any]:
    """``raw`` with the HYPERPOD section, moved to a region whose CloudFormation has every
    HyperPod resource type (config.regions.HYPERPOD_REGIONS)."""
    raw["region"] = region
    raw["network"]["availability_zones"] = [f"{region}a", f"{region}b"]
    raw["hyperpod"] = copy.deepcopy(HYPERPOD)
    return raw
