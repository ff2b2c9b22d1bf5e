"""An LMI image pinned by digest (``<registry>/<repository>@sha256:...``, what
``inference.serving.image_uri`` returns once ``inference/lmi_images.json`` records a digest) must
still name its ECR repository in the endpoint execution role's pull grant."""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from platform_constructs.endpoints import image_repository_arn

TAG, DIGEST = "0.38.0-lmi29.0.0-cu130", "sha256:" + "ab" * 32


@pytest.mark.parametrize("reference", [f":{TAG}", f"@{DIGEST}", f":{TAG}@{DIGEST}"])
def test_a_tag_or_digest_pinned_image_names_its_repository(reference: str) -> None:
    stack = cdk.Stack(
        cdk.App(), "S", env=cdk.Environment(account="123456789012", region="eu-west-1")
    )
    uri = f"763104351884.dkr.ecr.eu-west-1.amazonaws.com/djl-inference{reference}"
    resolved = stack.resolve(image_repository_arn(stack, uri))["Fn::Join"][1]
    assert resolved[1:] == [
        {"Ref": "AWS::Partition"},
        ":ecr:eu-west-1:763104351884:repository/djl-inference",
    ]
