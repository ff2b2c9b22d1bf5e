"""The feature flags of ``cdk.json``, for apps the tests build in-process.

The CLI passes them itself; an in-process ``cdk.App()`` must get the same ones, or it builds
different resources (e.g. ACL-based access logging instead of a bucket policy).
"""

import json
from pathlib import Path
from typing import Any

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's context plus what the CLI adds: ``aws:cdk:path`` metadata on every resource
    (cfn-lint reads it, e.g. to accept the config's explicit AZs as CDK output)."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text(encoding="utf-8"))["context"]
    return {**context, "aws:cdk:enable-path-metadata": True}
