"""The shape every space team's Workspace admission policy has, checked the same way on the
policy ``platform_constructs.hyperpod_spaces`` builds (tests/unit/test_spaces_admission.py) and
on the one a synthesized BU applies (tests/deploy_contract/test_spaces_contract.py)."""

from typing import Any


def assert_denying_workspace_policy(
    policy: dict[str, Any], binding: dict[str, Any], namespace: str
) -> None:
    """``policy`` (a ValidatingAdmissionPolicy, admissionregistration.k8s.io/v1) checks CREATE
    and UPDATE of workspaces.workspace.jupyter.org/v1alpha1 in ``namespace`` only, fails closed,
    and ``binding`` binds it with Deny."""
    assert policy["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert binding["spec"] == {
        "policyName": policy["metadata"]["name"],
        "validationActions": ["Deny"],
    }
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"] == {
        "resourceRules": [
            {
                "apiGroups": ["workspace.jupyter.org"],
                "apiVersions": ["v1alpha1"],
                "resources": ["workspaces"],
                "operations": ["CREATE", "UPDATE"],
            }
        ],
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
    }
