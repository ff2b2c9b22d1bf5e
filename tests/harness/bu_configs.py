"""A valid ``hyperpod`` section for config tests (MIG and whole-GPU groups, two teams)."""

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
