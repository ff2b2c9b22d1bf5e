"""What a SageMaker Spaces deploy relies on that cfn-lint and cdk-nag cannot see, on every example
BU with a ``hyperpod.spaces`` section: add-on order and pins, the add-on identities, the SSM
role remote access passes, the BU's own WorkspaceTemplates, who may create spaces, and the
admission policies that hold every space to its team's template, queue and GPU limits.

Sources: DESIGN.md "Facts for the next platform features: SageMaker Spaces on HyperPod";
jupyter-infra/jupyter-k8s-aws ``charts/aws-hyperpod`` (values.yaml, the two
sagemaker-*-template.yaml, workspace-*-policy.yaml) and jupyter-infra/jupyter-k8s
``api/v1alpha1/workspacetemplate_types.go`` and ``workspace_types.go``; the AWS managed policy
reference for AmazonSageMakerSpacesControllerPolicy; Kubernetes docs, "Validating Admission
Policy". What the policies' CEL admits is evaluated in tests/unit/test_spaces_admission.py.
"""

import fnmatch
import json
from typing import Any

import pytest
from harness.template_graph import TemplateGraph, actions_of, policy_statements, resources_of
from harness.workspace_policy import assert_denying_workspace_policy

from config.hyperpod import SPACES_ADDON_NAMES

SPACES_BUS = ("marketing",)
NO_SPACES_BUS = ("fraud", "credit", "risk")
TEMPLATE_KIND = "WorkspaceTemplate"
POLICY_KIND = "ValidatingAdmissionPolicy"
BINDING_KIND = "ValidatingAdmissionPolicyBinding"


def _hyperpod(synthesized: Any, bu: str) -> tuple[TemplateGraph, Any]:
    config = synthesized.configs[bu]
    return TemplateGraph(synthesized.template(bu, "hyperpod").to_json()), config


def _addon(graph: TemplateGraph, name: str) -> str:
    return graph.id_of(graph.find_one("AWS::EKS::Addon", lambda p: p["AddonName"] == name))


def _cluster(graph: TemplateGraph) -> str:
    return graph.id_of(graph.find_one("AWS::SageMaker::Cluster", lambda p: True))


def _bound_role(graph: TemplateGraph, namespace: str, service_account: str) -> tuple[str, str]:
    """(association id, role id) of the Pod Identity association for one service account."""
    association_id, association = graph.find_one_with_id(
        "AWS::EKS::PodIdentityAssociation",
        lambda p: (p["Namespace"], p["ServiceAccount"]) == (namespace, service_account),
    )
    return association_id, graph.ref_target(association["Properties"]["RoleArn"])


def _statements(graph: TemplateGraph, role_id: str) -> list[dict[str, Any]]:
    return [s for doc in graph.policies_of(role_id) for s in policy_statements(doc)]


def _applied(graph: TemplateGraph, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(manifest resource id, object) for every ``kind`` object the stack applies to the
    cluster (the kubectl provider's Custom::AWSCDK-EKS-KubernetesResource ``Manifest``)."""
    found = []
    for logical_id, resource in graph.of_type("Custom::AWSCDK-EKS-KubernetesResource").items():
        manifest = json.loads(TemplateGraph.render(resource["Properties"]["Manifest"]))
        found += [(logical_id, o) for o in manifest if o.get("kind") == kind]
    return found


def _templates(graph: TemplateGraph) -> list[dict[str, Any]]:
    return [o for _, o in _applied(graph, TEMPLATE_KIND)]


def _spaces(config: Any) -> Any:
    spaces = config.hyperpod.spaces
    assert spaces is not None
    return spaces


@pytest.mark.parametrize("bu", SPACES_BUS)
def test_the_addons_come_after_the_cluster_at_their_pins(synthesized, bu) -> None:
    """The Spaces add-on needs eks-pod-identity-agent, cert-manager and aws-ebs-csi-driver, and
    its version must be pinned (quick install picked an older one); HyperPod add-ons go in once
    the cluster has nodes (awsome-distributed-ai hyperpod-eks-tf: each add-on module
    depends_on module.hyperpod_cluster)."""
    graph, config = _hyperpod(synthesized, bu)
    pins = {SPACES_ADDON_NAMES[f]: v for f, v in _spaces(config).addons.model_dump().items()}
    cluster = _cluster(graph)
    spaces = _addon(graph, "amazon-sagemaker-spaces")
    ebs = _addon(graph, "aws-ebs-csi-driver")
    for name, version in pins.items():
        addon = graph.resource(_addon(graph, name))["Properties"]
        assert addon["AddonVersion"] == version, name
        assert graph.depends_on(_addon(graph, name), cluster), name
    for need in ("cert-manager", "eks-pod-identity-agent"):
        assert graph.depends_on(spaces, _addon(graph, need)), need
    assert graph.depends_on(spaces, ebs)
    assert not graph.depends_on(cluster, spaces)
    # The controller's credentials exist before its pods start.
    controller, _ = _bound_role(graph, "jupyter-k8s-system", "jupyter-k8s-controller-manager")
    assert graph.depends_on(spaces, controller)


@pytest.mark.parametrize("bu", SPACES_BUS)
def test_the_ebs_csi_role_attaches_volumes_on_this_cluster_only(synthesized, bu) -> None:
    """On HyperPod the EBS CSI driver's role also needs sagemaker:AttachClusterNodeVolume and
    DetachClusterNodeVolume (DESIGN.md, Spaces prerequisites); the driver's service account is
    kube-system/ebs-csi-controller-sa with AmazonEBSCSIDriverPolicy (EKS user guide, "Amazon EBS
    CSI driver"). Scoped to the BU's one HyperPod cluster, never ``*``."""
    graph, _ = _hyperpod(synthesized, bu)
    _, role = _bound_role(graph, "kube-system", "ebs-csi-controller-sa")
    properties = graph.resource(role)["Properties"]
    assert "AmazonEBSCSIDriverPolicy" in json.dumps(properties["ManagedPolicyArns"])
    assert "pods.eks.amazonaws.com" in json.dumps(properties["AssumeRolePolicyDocument"])
    cluster_arn = f"<GetAtt {_cluster(graph)}.ClusterArn>"
    volume_actions = {"sagemaker:AttachClusterNodeVolume", "sagemaker:DetachClusterNodeVolume"}
    granted = set()
    for statement in _statements(graph, role):
        actions = set(actions_of(statement))
        if actions & volume_actions:
            assert resources_of(statement) == [cluster_arn], statement
            granted |= actions & volume_actions
    assert granted == volume_actions


@pytest.mark.parametrize("bu", SPACES_BUS)
def test_the_controller_is_a_pod_identity_with_the_spaces_policy(synthesized, bu) -> None:
    """AmazonSageMakerSpacesControllerPolicy conditions on ``${aws:PrincipalTag/eks-cluster-arn}``
    (AWS managed policy reference), a session tag only Pod Identity sets: the controller
    (jupyter-k8s-system/jupyter-k8s-controller-manager) gets it through Pod Identity, its
    trust narrowed to this cluster, namespace and service account."""
    graph, _ = _hyperpod(synthesized, bu)
    _, role = _bound_role(graph, "jupyter-k8s-system", "jupyter-k8s-controller-manager")
    properties = graph.resource(role)["Properties"]
    assert "AmazonSageMakerSpacesControllerPolicy" in json.dumps(properties["ManagedPolicyArns"])
    (trust,) = policy_statements(properties["AssumeRolePolicyDocument"])
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert sorted(trust["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
    tags = trust["Condition"]["StringEquals"]
    assert tags["aws:RequestTag/kubernetes-namespace"] == "jupyter-k8s-system"
    assert tags["aws:RequestTag/kubernetes-service-account"] == "jupyter-k8s-controller-manager"
    assert "aws:RequestTag/eks-cluster-arn" in tags


@pytest.mark.parametrize("bu", SPACES_BUS)
def test_remote_access_uses_one_ssm_role_only_the_controller_may_pass_to_ssm(synthesized, bu):
    """Remote access registers spaces as SSM managed nodes with a role holding
    AmazonSSMManagedInstanceCore, trusted by ssm.amazonaws.com (DESIGN.md); the trust carries
    the confused-deputy key aws:SourceAccount (SSM user guide, hybrid service role). The
    controller may pass exactly that role, and only to SSM (iam:PassedToService). The add-on's
    values switch remote access on with that role (chart values
    ``remoteAccess.{enabled, ssmManagedNodeRole}``, the role by name: README-SSM-Setup.md step
    4.1) and keep the web UI, whose ALB defaults to internet-facing
    (``clusterWebUI.alb.scheme``), and direct SSH off."""
    graph, config = _hyperpod(synthesized, bu)
    ssm_id, ssm_role = graph.find_one_with_id(
        "AWS::IAM::Role",
        lambda p: p.get("RoleName") == config.naming.role("hyperpod-spaces-ssm"),
    )
    properties = ssm_role["Properties"]
    assert "AmazonSSMManagedInstanceCore" in json.dumps(properties["ManagedPolicyArns"])
    (trust,) = policy_statements(properties["AssumeRolePolicyDocument"])
    assert trust["Principal"] == {"Service": "ssm.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == config.account
    assert sorted(trust["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
    assert graph.policies_of(ssm_id) == []  # nothing beyond the managed policy

    _, controller = _bound_role(graph, "jupyter-k8s-system", "jupyter-k8s-controller-manager")
    passes = [s for s in _statements(graph, controller) if "iam:PassRole" in actions_of(s)]
    assert len(passes) == 1
    assert resources_of(passes[0]) == [f"<GetAtt {ssm_id}.Arn>"]
    assert passes[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}}

    addon = graph.resource(_addon(graph, "amazon-sagemaker-spaces"))["Properties"]
    values = graph.json_values(addon["ConfigurationValues"])["jupyter-k8s-aws-hyperpod"]
    assert values["remoteAccess"] == {
        "enabled": True,
        "ssmManagedNodeRole": f"<Ref {ssm_id}>",
    }
    assert values["clusterWebUI"] == {"enabled": False}
    assert values["directSSH"] == {"enabled": False}


@pytest.mark.parametrize("bu", SPACES_BUS)
def test_templates_run_the_bus_mirrored_image_and_nothing_public(synthesized, bu) -> None:
    """The add-on's own templates default to public.ecr.aws/sagemaker/sagemaker-distribution
    (charts/aws-hyperpod/templates/sagemaker-*-template.yaml), which a closed BU cannot reach
    (ECR interface endpoints serve this region's private registries only). Each of the BU's
    templates allows exactly its mirror, ``<bu>/hyperpod-mirror/sagemaker-distribution``, which
    the node role may pull (the HyperPod stack grants ``<bu>/*``)."""
    graph, config = _hyperpod(synthesized, bu)
    spaces = _spaces(config)
    image = (
        f"{config.account}.dkr.ecr.{config.region}.amazonaws.com/{config.name}/hyperpod-mirror/"
        f"sagemaker-distribution:{spaces.image_tag}"
    )
    templates = _templates(graph)
    assert sorted(t["metadata"]["name"] for t in templates) == sorted(spaces.template_names())
    for template in templates:
        spec = template["spec"]
        assert template["apiVersion"] == "workspace.jupyter.org/v1alpha1"
        assert template["metadata"]["namespace"] == "jupyter-k8s-system"
        assert spec["defaultImage"] == image
        assert spec["allowedImages"] == [image]
        assert "public.ecr.aws" not in json.dumps(template)
    # The nodes pull it with the execution role, which names the BU's repositories only.
    role = graph.find_one(
        "AWS::IAM::Role", lambda p: p.get("RoleName") == config.naming.role("hyperpod-execution")
    )
    repository = (
        f"arn:aws:ecr:{config.region}:{config.account}:repository/"
        f"{config.name}/hyperpod-mirror/sagemaker-distribution"
    )
    assert any(
        statement["Effect"] == "Allow"
        and any(fnmatch.fnmatch("ecr:BatchGetImage", a) for a in actions_of(statement))
        and any(fnmatch.fnmatch(repository, r) for r in resources_of(statement))
        for statement in _statements(graph, graph.id_of(role))
    )


@pytest.mark.parametrize("bu", SPACES_BUS)
def test_template_resources_fit_the_nodes_and_the_mig_maximum(synthesized, bu) -> None:
    """The public templates' 2 vCPUs do not fit ``threadsPerCore: 1`` nodes (DESIGN.md): a
    space asks for the config's CPU and memory. A MIG request names a profile the cluster
    offers (``nvidia.com/mig-<profile>``, DESIGN.md MIG mechanics) no larger than the config's
    maximum, never beside whole GPUs, and whole GPUs stay within ``max_gpus``
    (WorkspaceTemplate ``resourceBounds.resources``, a map by resource name since jupyter-k8s
    #287; ``idleShutdownOverrides.maxIdleTimeoutInMinutes`` since #264). Without
    ``idle_shutdown_default_minutes`` a space may set idle shutdown within the cap or turn it off
    (``allow: true``, jupyter-k8s docs/source/concepts/templates/bounds.md)."""
    graph, config = _hyperpod(synthesized, bu)
    spaces = _spaces(config)
    allowed = config.hyperpod.mig_profiles_within(spaces.max_mig_profile)
    for template in _templates(graph):
        spec = template["spec"]
        requests = spec["defaultResources"]["requests"]
        assert spec["defaultResources"]["limits"] == requests
        assert float(requests["cpu"]) == spaces.cpu < 2
        assert requests["memory"] == f"{spaces.memory_gib}Gi"
        mig = [
            k.removeprefix("nvidia.com/mig-") for k in requests if k.startswith("nvidia.com/mig-")
        ]
        assert mig == [spaces.default_mig_profile]
        assert set(mig) <= set(allowed)
        assert "nvidia.com/gpu" not in requests
        assert spec["resourceBounds"] == {
            "resources": {"nvidia.com/gpu": {"min": "0", "max": str(spaces.max_gpus)}}
        }
        annotation = template["metadata"]["annotations"]["platform/allowed-mig-profiles"]
        assert annotation.split(",") == allowed
        overrides = spec["idleShutdownOverrides"]
        assert overrides["maxIdleTimeoutInMinutes"] == spaces.idle_shutdown_minutes
        if spaces.idle_shutdown_default_minutes is None:
            assert overrides["allow"] is True
            assert "defaultIdleShutdown" not in spec


@pytest.mark.parametrize("bu", SPACES_BUS)
def test_each_teams_templates_carry_its_kueue_queue_and_priority(synthesized, bu) -> None:
    """Task governance queues a team's work through ``kueue.x-k8s.io/queue-name:
    hyperpod-ns-<team>-localqueue`` and ``kueue.x-k8s.io/priority-class`` (DESIGN.md, Training
    on HyperPod EKS; "Kueue labels apply" to spaces): each team's templates name its own."""
    graph, config = _hyperpod(synthesized, bu)
    teams = {t.name: t for t in config.hyperpod.teams}
    priorities = {p.name for p in config.hyperpod.scheduler.priority_classes}
    by_name = {t["metadata"]["name"]: t for t in _templates(graph)}
    for member in _spaces(config).teams:
        for app in _spaces(config).apps:
            labels = by_name[f"{member.team}-{app}"]["metadata"]["labels"]
            assert labels["kueue.x-k8s.io/queue-name"] == teams[member.team].queue
            assert labels["kueue.x-k8s.io/priority-class"] == member.priority_class
            assert member.priority_class in priorities


@pytest.mark.parametrize("bu", SPACES_BUS)
def test_space_namespaces_enforce_baseline_pod_security(synthesized, bu) -> None:
    """Space pods break under the ``restricted`` level (DESIGN.md); each space team's namespace
    enforces ``baseline``, patched after the team's objects create it."""
    graph, config = _hyperpod(synthesized, bu)
    teams = {t.name: t for t in config.hyperpod.teams}
    for member in _spaces(config).teams:
        namespace = teams[member.team].namespace
        patch_id, patch = graph.find_one_with_id(
            "Custom::AWSCDK-EKS-KubernetesPatch",
            lambda p, n=namespace: p["ResourceName"] == f"namespace/{n}",
        )
        applied = json.loads(patch["Properties"]["ApplyPatchJson"])
        assert applied == {
            "metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}
        }
        namespaces = [
            k
            for k, v in graph.of_type("Custom::AWSCDK-EKS-KubernetesResource").items()
            if f'"name":"{namespace}"' in TemplateGraph.render(v["Properties"]["Manifest"])
            and '"kind":"Namespace"' in TemplateGraph.render(v["Properties"]["Manifest"])
        ]
        assert namespaces
        assert all(graph.depends_on(patch_id, n) for n in namespaces)


@pytest.mark.parametrize("bu", SPACES_BUS)
def test_space_users_reach_only_their_teams_namespaces(synthesized, bu) -> None:
    """Who may create spaces: EKS access entries for the config's roles with
    AmazonSagemakerHyperpodSpacePolicy scoped to the team's namespace and
    AmazonSagemakerHyperpodSpaceTemplatePolicy for the templates' namespace (DESIGN.md, User
    access); never cluster-wide, never another team's namespace."""
    graph, config = _hyperpod(synthesized, bu)
    teams = {t.name: t for t in config.hyperpod.teams}
    entries = {
        TemplateGraph.render(e["Properties"]["PrincipalArn"]): e["Properties"]
        for e in graph.of_type("AWS::EKS::AccessEntry").values()
    }
    for member in _spaces(config).teams:
        for role in member.roles:
            entry = entries[f"arn:aws:iam::{config.account}:role/{role}"]
            policies = {
                TemplateGraph.render(p["PolicyArn"]).rsplit("/", 1)[1]: p["AccessScope"]
                for p in entry["AccessPolicies"]
            }
            assert policies == {
                "AmazonSagemakerHyperpodSpacePolicy": {
                    "Type": "namespace",
                    "Namespaces": [teams[member.team].namespace],
                },
                "AmazonSagemakerHyperpodSpaceTemplatePolicy": {
                    "Type": "namespace",
                    "Namespaces": ["jupyter-k8s-system"],
                },
            }


@pytest.mark.parametrize("bu", SPACES_BUS)
def test_each_space_team_has_a_denying_admission_policy_on_its_namespace(synthesized, bu) -> None:
    """A template's bounds bind only workspaces that reference it, and its labels do not reach a
    Workspace (jupyter-k8s docs/source/concepts/templates/bounds.md); the MIG maximum was an
    annotation. So each space team gets a ValidatingAdmissionPolicy (admissionregistration.k8s.io
    /v1, GA in Kubernetes 1.30: Kubernetes docs, "Validating Admission Policy") on CREATE and
    UPDATE of workspaces.workspace.jupyter.org/v1alpha1 in its namespace only
    (``kubernetes.io/metadata.name``: Kubernetes docs, "Well-Known Labels, Annotations and
    Taints"), failing closed and bound with Deny. Its CEL names the team's templates in
    jupyter-k8s-system, its Kueue queue and priority class (training jobs' queue label, DESIGN.md
    Training on HyperPod EKS), the MIG profiles the config admits and its whole-GPU cap."""
    graph, config = _hyperpod(synthesized, bu)
    spaces = _spaces(config)
    teams = {t.name: t for t in config.hyperpod.teams}
    policies = {o["metadata"]["name"]: o for _, o in _applied(graph, POLICY_KIND)}
    bindings = {o["metadata"]["name"]: o for _, o in _applied(graph, BINDING_KIND)}
    allowed = config.hyperpod.mig_profiles_within(spaces.max_mig_profile)
    assert sorted(policies) == sorted(bindings)
    assert len(policies) == len(spaces.teams)
    for member in spaces.teams:
        team = teams[member.team]
        name = f"hyperpod-spaces-{team.name}"
        policy, binding = policies[name], bindings[name]
        assert_denying_workspace_policy(policy, binding, team.namespace)
        spec = policy["spec"]
        # Only the add-on's own controller, and a space being stopped, are let through unchecked.
        conditions = " ".join(c["expression"] for c in spec["matchConditions"])
        assert (
            "'system:serviceaccount:jupyter-k8s-system:jupyter-k8s-controller-manager'"
            in conditions
        )
        assert "'Stopped'" in conditions
        expressions = [v["expression"] for v in spec["validations"]]
        templates = ", ".join(f"'{n}'" for n in spaces.template_names_of(team.name))
        assert any(f"templateRef.name in [{templates}]" in e for e in expressions)
        assert any("== 'jupyter-k8s-system'" in e for e in expressions)
        assert any(f"['kueue.x-k8s.io/queue-name'] == '{team.queue}'" in e for e in expressions)
        assert any(
            f"['kueue.x-k8s.io/priority-class'] == '{member.priority_class}'" in e
            for e in expressions
        )
        mig = ", ".join(f"'nvidia.com/mig-{p}'" for p in allowed)
        (mig_rule,) = [e for e in expressions if "nvidia.com/mig-" in e]
        assert f"k in [{mig}]" in mig_rule
        (gpu_rule,) = [e for e in expressions if "'nvidia.com/gpu'" in e]
        assert f"isGreaterThan(quantity('{spaces.max_gpus}'))" in gpu_rule
        assert all(v["message"] for v in spec["validations"])


@pytest.mark.parametrize("bu", SPACES_BUS)
def test_the_policies_are_in_place_before_the_addon_brings_workspaces(synthesized, bu) -> None:
    """The add-on installs the Workspace CRD; a policy needs no CRD to exist. Applying the
    policies first leaves no window in which a space is admitted without them."""
    graph, _ = _hyperpod(synthesized, bu)
    (manifest,) = {logical_id for logical_id, _ in _applied(graph, POLICY_KIND)}
    assert {logical_id for logical_id, _ in _applied(graph, BINDING_KIND)} == {manifest}
    assert graph.depends_on(_addon(graph, "amazon-sagemaker-spaces"), manifest)


@pytest.mark.parametrize("bu", NO_SPACES_BUS)
def test_a_bu_without_spaces_gets_none_of_it(synthesized, bu) -> None:
    """``hyperpod.spaces`` is optional: without it no add-on, role or template is made."""
    graph, config = _hyperpod(synthesized, bu)
    assert config.hyperpod.spaces is None
    names = {a["Properties"]["AddonName"] for a in graph.of_type("AWS::EKS::Addon").values()}
    assert not names & set(SPACES_ADDON_NAMES.values())
    assert _templates(graph) == []
    assert _applied(graph, POLICY_KIND) == []
    assert _applied(graph, BINDING_KIND) == []
