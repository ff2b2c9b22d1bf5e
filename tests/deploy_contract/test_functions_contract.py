"""No function of a BU runs outside its VPC: a closed BU's only way to AWS is its endpoints, and
a Lambda outside the VPC is a path around them (and cannot reach the private EKS endpoint)."""

import json

from harness.template_graph import TemplateGraph


def test_every_lambda_of_every_bu_runs_in_the_bus_private_subnets(synthesized) -> None:
    outside = []
    for (bu, unit), template in synthesized.templates.items():
        graph = TemplateGraph(template.to_json())
        for logical_id, function in graph.of_type("AWS::Lambda::Function").items():
            vpc = function["Properties"].get("VpcConfig", {})
            if not vpc.get("SubnetIds") or not vpc.get("SecurityGroupIds"):
                outside.append(f"{bu}/{unit}: {logical_id}")
    assert outside == []


def test_the_inference_operator_trusts_its_service_account_without_a_cfnjson_function(
    synthesized,
) -> None:
    """IRSA's condition keys hold the cluster's issuer; the trust is a JSON string with the
    issuer joined in (the IAM registry schema types AssumeRolePolicyDocument object|string), so
    no CfnJson custom resource, whose provider Lambda runs outside the VPC, is needed."""
    graph = TemplateGraph(synthesized.template("fraud", "hyperpod").to_json())
    assert not [r for r in graph.resources.values() if r["Type"] == "Custom::AWSCDKCfnJson"]
    trusts = [
        json.loads(TemplateGraph.render(r["Properties"]["AssumeRolePolicyDocument"]))
        for r in graph.of_type("AWS::IAM::Role").values()
        if "AssumeRoleWithWebIdentity" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
    ]
    operator = (
        "system:serviceaccount:hyperpod-inference-system:hyperpod-inference-controller-manager"
    )
    (document,) = [t for t in trusts if operator in json.dumps(t)]
    web, service = document["Statement"]
    assert web["Action"] == "sts:AssumeRoleWithWebIdentity"
    conditions = web["Condition"]["StringEquals"]
    assert {k.rsplit(":", 1)[1]: v for k, v in conditions.items()} == {
        "sub": operator,
        "aud": "sts.amazonaws.com",
    }
    assert service["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert service["Condition"] == {"StringEquals": {"aws:SourceAccount": "111111111111"}}
