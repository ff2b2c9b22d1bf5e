"""SageMaker Spaces on a HyperPod EKS cluster: JupyterLab and Code Editor workspaces that data
scientists open on a MIG slice or a whole GPU, reached from Studio or a local VS Code over SSM.

What it creates, each fact sourced where it is used:
- the EKS add-ons ``aws-ebs-csi-driver`` (home volumes) and ``amazon-sagemaker-spaces``, pinned,
  after the HyperPod cluster has nodes;
- the controller's Pod Identity role, the EBS CSI driver's, and the SSM managed-node role that
  remote access registers spaces with;
- the BU's own WorkspaceTemplates (one per team and app) whose image is the BU's mirror of
  SageMaker Distribution, never the public one the add-on's templates default to;
- per team, ``pod-security.kubernetes.io/enforce: baseline`` on its namespace (``restricted``
  breaks space pods) and EKS access entries for the roles its members use;
- per team, a ValidatingAdmissionPolicy that admits a Workspace in the team's namespace only
  from the team's templates, in the team's Kueue queue and priority class, with MIG slices no
  larger than the BU's maximum and no more whole GPUs than it allows.
"""

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from platform_constructs.gates import acknowledge_grant, attach_managed_policy
from platform_constructs.hyperpod_eks import HyperPodEksCluster, pinned_addon

SPACES_ADDON = "amazon-sagemaker-spaces"
EBS_CSI_ADDON = "aws-ebs-csi-driver"
# The add-on's namespace and controller service account (DESIGN.md, "SageMaker Spaces on
# HyperPod"; jupyter-infra/jupyter-k8s-aws charts/aws-hyperpod/values.yaml `namespace`).
SYSTEM_NAMESPACE = "jupyter-k8s-system"
CONTROLLER_SERVICE_ACCOUNT = "jupyter-k8s-controller-manager"
CONTROLLER_POLICY = "AmazonSageMakerSpacesControllerPolicy"
SSM_NODE_POLICY = "AmazonSSMManagedInstanceCore"
# The EBS CSI controller's service account and AWS policy (EKS user guide, "Amazon EBS CSI
# driver": kube-system/ebs-csi-controller-sa, service-role/AmazonEBSCSIDriverPolicy).
EBS_CSI_NAMESPACE, EBS_CSI_SERVICE_ACCOUNT = "kube-system", "ebs-csi-controller-sa"
EBS_CSI_POLICY = "service-role/AmazonEBSCSIDriverPolicy"
# On HyperPod the driver attaches volumes through SageMaker (DESIGN.md, Spaces prerequisites).
CLUSTER_VOLUME_ACTIONS = ("sagemaker:AttachClusterNodeVolume", "sagemaker:DetachClusterNodeVolume")
# EKS access policies for space users (DESIGN.md, "User access").
SPACE_POLICY = "AmazonSagemakerHyperpodSpacePolicy"
SPACE_TEMPLATE_POLICY = "AmazonSagemakerHyperpodSpaceTemplatePolicy"

# WorkspaceTemplate (jupyter-infra/jupyter-k8s api/v1alpha1/workspacetemplate_types.go; the
# add-on's own templates: jupyter-k8s-aws charts/aws-hyperpod/templates/sagemaker-*-template.yaml).
TEMPLATE_API_VERSION = "workspace.jupyter.org/v1alpha1"
TEMPLATE_KIND = "WorkspaceTemplate"
STORAGE_CLASS = "sagemaker-spaces-default-storage-class"  # the chart's storageClass.ebs.name
ACCESS_STRATEGY = "hyperpod-access-strategy"  # the chart's hyperpod-access-strategy.yaml
HOME = "/home/sagemaker-user"
SAGEMAKER_USER_GROUP = 1000  # the chart's defaultPodSecurityContext.fsGroup
ENTRYPOINTS = {
    "jupyterlab": "/opt/amazon/sagemaker/workspace/bin/entrypoint-workspace-jupyterlab",
    "code-editor": "/opt/amazon/sagemaker/workspace/bin/entrypoint-workspace-code-editor",
}
DISPLAY_NAMES = {"jupyterlab": "JupyterLab", "code-editor": "Code Editor"}
# Where `make stage-hyperpod-chart` must copy the image from (the add-on's templates name it).
SPACES_IMAGE_SOURCE = "public.ecr.aws/sagemaker/sagemaker-distribution"
SPACES_IMAGE_NAME = "sagemaker-distribution"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
POD_SECURITY_LABEL = "pod-security.kubernetes.io/enforce"
POD_SECURITY_LEVEL = "baseline"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
GPU_RESOURCE = "nvidia.com/gpu"
ALLOWED_MIG_ANNOTATION = "platform/allowed-mig-profiles"
# Idle shutdown (jupyter-k8s api/v1alpha1: WorkspaceTemplate `defaultIdleShutdown` is an
# IdleShutdownSpec {enabled, idleTimeoutInMinutes >= 1, detection} and `idleShutdownOverrides`
# is {allow, minIdleTimeoutInMinutes, maxIdleTimeoutInMinutes}, names since jupyter-k8s #264,
# 2025-11-14, which AWS's HyperPod CLI adopted for the add-on's GA, sagemaker-hyperpod-cli #296).
# Detection polls SageMaker Distribution's idle endpoint on the spaces' port (AWS docs,
# "Customize add-on", Idle shutdown: httpGet /api/idle, port 8888).
IDLE_PATH, SPACE_PORT = "/api/idle", 8888
MIN_IDLE_TIMEOUT_MINUTES = 1  # the CRD's minimum for idleTimeoutInMinutes

# Admission (Kubernetes docs, "Validating Admission Policy": admissionregistration.k8s.io/v1 is
# GA since 1.30, which the Spaces add-on needs anyway; the add-on guards Workspaces the same way,
# jupyter-k8s-aws charts/aws-hyperpod/templates/workspace-memory-policy.yaml).
ADMISSION_API_VERSION = "admissionregistration.k8s.io/v1"
# The Workspace resource (jupyter-k8s api/v1alpha1/workspace_types.go; group, version and plural
# as AWS's HyperPod CLI calls them, sagemaker-hyperpod-cli cli/constants/space_constants.py).
WORKSPACE_GROUP, WORKSPACE_VERSION, WORKSPACE_RESOURCE = (
    "workspace.jupyter.org",
    "v1alpha1",
    "workspaces",
)
# The API server labels every namespace with its own name (Kubernetes docs, "Well-Known Labels,
# Annotations and Taints": kubernetes.io/metadata.name).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# The add-on's controller updates Workspaces (finalizers, idle stop): never held to the policy,
# or a space made before it could not be stopped or deleted.
CONTROLLER_USER = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{CONTROLLER_SERVICE_ACCOUNT}"


@dataclass(frozen=True)
class SpacesTeam:
    """One team that may run spaces: where, in which Kueue queue, who may create them."""

    name: str
    namespace: str
    queue: str
    priority_class: str
    user_role_arns: tuple[str, ...]


@dataclass(frozen=True)
class SpaceDefaults:
    """What every template of the BU gives a space unless the space asks otherwise."""

    image: str
    apps: tuple[str, ...]
    cpu: str
    memory: str
    storage: str
    default_mig_profile: str | None
    allowed_mig_profiles: tuple[str, ...]
    max_gpus: int
    idle_shutdown_minutes: int
    # The idle timeout a space gets unless it sets one; None: no idle shutdown by default.
    idle_shutdown_default_minutes: int | None = None


def spaces_image(*, registry: str, bu: str, tag: str) -> str:
    """The BU's mirror of SageMaker Distribution, beside the chart's mirrored images."""
    return f"{registry}/{bu}/hyperpod-mirror/{SPACES_IMAGE_NAME}:{tag}"


def addon_configuration(*, ssm_role_name: str) -> dict[str, Any]:
    """The add-on's values: remote access over SSM on; the cluster web UI (an ALB whose default
    scheme is internet-facing) and direct SSH off (jupyter-k8s-aws charts/aws-hyperpod/
    values.yaml: ``remoteAccess.{enabled, ssmManagedNodeRole}``, ``clusterWebUI.enabled``,
    ``clusterWebUI.alb.scheme``, ``directSSH.enabled``; nested under the subchart's name
    ``jupyter-k8s-aws-hyperpod`` in the add-on's configuration, DESIGN.md). The role goes by
    name, "without ARN prefix" (charts/aws-hyperpod/README-SSM-Setup.md, step 4.1): SSM's
    CreateActivation takes a role name."""
    return {
        "jupyter-k8s-aws-hyperpod": {
            "remoteAccess": {"enabled": True, "ssmManagedNodeRole": ssm_role_name},
            "clusterWebUI": {"enabled": False},
            "directSSH": {"enabled": False},
        }
    }


def workspace_template(team: SpacesTeam, app: str, name: str, d: SpaceDefaults) -> dict[str, Any]:
    """One WorkspaceTemplate, shaped like the add-on's own (same fields, the BU's values)."""
    amounts: dict[str, str] = {"cpu": d.cpu, "memory": d.memory}
    if d.default_mig_profile is not None:
        amounts[MIG_RESOURCE_PREFIX + d.default_mig_profile] = "1"
    return {
        "apiVersion": TEMPLATE_API_VERSION,
        "kind": TEMPLATE_KIND,
        "metadata": {
            "name": name,
            "namespace": SYSTEM_NAMESPACE,
            "labels": {
                "platform/team": team.name,
                QUEUE_LABEL: team.queue,
                PRIORITY_LABEL: team.priority_class,
            },
            "annotations": {ALLOWED_MIG_ANNOTATION: ",".join(d.allowed_mig_profiles)},
        },
        "spec": {
            "displayName": f"{DISPLAY_NAMES[app]} ({team.name})",
            "description": f"{DISPLAY_NAMES[app]} on SageMaker Distribution from the BU's "
            f"registry, queued in {team.queue}",
            "defaultImage": d.image,
            "allowedImages": [d.image],
            # Requests equal limits: a space is Guaranteed and counts against the quota as asked.
            "defaultResources": {"requests": dict(amounts), "limits": dict(amounts)},
            # jupyter-k8s api/v1alpha1 ResourceBounds: a map by resource name (since #287).
            "resourceBounds": {"resources": {GPU_RESOURCE: {"min": "0", "max": str(d.max_gpus)}}},
            "primaryStorage": {
                "defaultSize": d.storage,
                "minSize": "1Gi",
                "maxSize": "100Gi",
                "defaultStorageClassName": STORAGE_CLASS,
                "defaultMountPath": HOME,
            },
            "defaultContainerConfig": {"command": [ENTRYPOINTS[app]]},
            "defaultPodSecurityContext": {"fsGroup": SAGEMAKER_USER_GROUP},
            "defaultOwnershipType": "OwnerOnly",
            **idle_shutdown(d.idle_shutdown_default_minutes, d.idle_shutdown_minutes),
            "defaultAccessStrategy": {"name": ACCESS_STRATEGY, "namespace": SYSTEM_NAMESPACE},
            "allowSecondaryStorages": True,
            "appType": app,
        },
    }


def idle_shutdown(default_minutes: int | None, max_minutes: int) -> dict[str, Any]:
    """The template's idle-shutdown fields. With a default, overrides are locked (``allow:
    false``): a space keeps idle shutdown on and may only move its timeout within
    [1, ``max_minutes``]; with ``allow: true`` a space may turn it off, so the cap binds only
    spaces that keep it on (jupyter-k8s docs/source/concepts/templates/bounds.md, "Idle shutdown
    bounds"; internal/webhook/v1alpha1/idle_shutdown_validator.go). Locking needs a default to
    compare against (docs/source/dive-deeper/webhooks/template-validation.md)."""
    if default_minutes is None:
        return {"idleShutdownOverrides": {"allow": True, "maxIdleTimeoutInMinutes": max_minutes}}
    return {
        "defaultIdleShutdown": {
            "enabled": True,
            "idleTimeoutInMinutes": default_minutes,
            "detection": {"httpGet": {"path": IDLE_PATH, "port": SPACE_PORT}},
        },
        "idleShutdownOverrides": {
            "allow": False,
            "minIdleTimeoutInMinutes": MIN_IDLE_TIMEOUT_MINUTES,
            "maxIdleTimeoutInMinutes": max_minutes,
        },
    }


# What this module quotes into CEL: Kubernetes names, label values and user names only, so a
# quote or a backslash here is a bug, not something to escape.
_CEL_QUOTABLE = re.compile(r"[A-Za-z0-9._/:-]+")


def cel_string(value: str) -> str:
    """``value`` as a CEL string literal."""
    if _CEL_QUOTABLE.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a name this policy quotes into CEL")
    return f"'{value}'"


def cel_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(cel_string(v) for v in values) + "]"


def _requests_and_limits(resources: str, check: Callable[[str], str]) -> str:
    """``check`` holds on a ResourceRequirements' ``requests`` and on its ``limits``: an
    extended resource named only in limits is requested too (Kubernetes docs, "Resource
    Management for Pods and Containers": requests default to limits)."""
    return (
        f"!has({resources}) || ("
        f"(!has({resources}.requests) || {check(resources + '.requests')}) && "
        f"(!has({resources}.limits) || {check(resources + '.limits')}))"
    )


def _space_and_init_containers(check: Callable[[str], str]) -> str:
    """``check`` (of a ResourceRequirements path) holds on the space's container
    (``spec.resources``) and on each of ``spec.initContainers`` (core Containers), whose requests
    count towards the pod's too (Kubernetes docs, "Init Containers": effective requests)."""
    return (
        f"({check('object.spec.resources')}) && (!has(object.spec.initContainers) || "
        f"object.spec.initContainers.all(c, {check('c.resources')}))"
    )


def mig_expression(allowed_profiles: Sequence[str]) -> str:
    """CEL: every ``nvidia.com/mig-*`` resource a Workspace names is one of
    ``allowed_profiles``. An allow-list, so a profile no group offers, or a larger one, is
    refused alike; empty: no MIG resource at all."""
    names = [MIG_RESOURCE_PREFIX + p for p in allowed_profiles]
    allowed = f" || k in {cel_list(names)}" if names else ""

    def keys(resource_list: str) -> str:
        return f"{resource_list}.all(k, !k.startsWith({cel_string(MIG_RESOURCE_PREFIX)}){allowed})"

    return _space_and_init_containers(lambda r: _requests_and_limits(r, keys))


def gpu_expression(max_gpus: int) -> str:
    """CEL: no container asks for more than ``max_gpus`` whole GPUs. Quantities compare with
    the Kubernetes quantity library (Kubernetes docs, "Common Expression Language in
    Kubernetes"; the add-on's workspace-memory-policy.yaml uses it); ``string()`` because a
    ResourceList value may be written as a number."""
    gpu, most = cel_string(GPU_RESOURCE), cel_string(str(max_gpus))

    def count(resource_list: str) -> str:
        value = f"{resource_list}[{gpu}]"
        return (
            f"(!({gpu} in {resource_list}) || "
            f"!quantity(string({value})).isGreaterThan(quantity({most})))"
        )

    return _space_and_init_containers(lambda r: _requests_and_limits(r, count))


def admission_name(team: SpacesTeam) -> str:
    return f"hyperpod-spaces-{team.name}"


def admission_policy(
    team: SpacesTeam, templates: Sequence[str], d: SpaceDefaults
) -> dict[str, Any]:
    """The team's ValidatingAdmissionPolicy: a Workspace created or updated in its namespace
    must come from one of ``templates`` and carry the team's Kueue labels (the labels the
    controller copies onto the space's Deployment and pods, jupyter-k8s internal/controller/
    deployment_builder.go, which is what Kueue queues), and name no MIG profile outside
    ``d.allowed_mig_profiles`` nor more than ``d.max_gpus`` whole GPUs. A template's own bounds
    apply only to workspaces that reference it (jupyter-k8s docs/source/concepts/templates/
    bounds.md), hence the template check. Paths: Workspace ``metadata.labels``,
    ``spec.templateRef.{name,namespace}``, ``spec.resources``, ``spec.initContainers``,
    ``spec.desiredStatus`` (jupyter-k8s api/v1alpha1/workspace_types.go)."""
    ref = "object.spec.templateRef"
    label = "object.metadata.labels"
    if d.allowed_mig_profiles:
        mig_fix = (
            f"Request MIG slices only of profile {', '.join(d.allowed_mig_profiles)} "
            f"(nvidia.com/mig-<profile> in spec.resources and init containers): the spaces "
            f"of team {team.name} may not use larger or other profiles."
        )
    else:
        mig_fix = (
            "Remove nvidia.com/mig-* from spec.resources and init containers: the spaces of "
            f"team {team.name} get no MIG slices."
        )
    if d.max_gpus:
        gpu_fix = (
            f"Request at most {d.max_gpus} whole GPU{'s' if d.max_gpus > 1 else ''} "
            "(nvidia.com/gpu in spec.resources and init containers, requests and limits) in "
            f"the spaces of team {team.name}."
        )
    else:
        slice_hint = (
            " or request a nvidia.com/mig-<profile> slice" if d.allowed_mig_profiles else ""
        )
        gpu_fix = (
            f"Remove nvidia.com/gpu from spec.resources and init containers{slice_hint}: the "
            f"spaces of team {team.name} get no whole GPUs."
        )
    validations = [
        (
            f"has({ref}) && has({ref}.namespace) && "
            f"{ref}.namespace == {cel_string(SYSTEM_NAMESPACE)} && "
            f"{ref}.name in {cel_list(templates)}",
            f"Create the space from a template of team {team.name}: set spec.templateRef.name "
            f"to {' or '.join(templates)} and spec.templateRef.namespace to {SYSTEM_NAMESPACE}.",
        ),
        (
            f"has({label}) && {cel_string(QUEUE_LABEL)} in {label} && "
            f"{label}[{cel_string(QUEUE_LABEL)}] == {cel_string(team.queue)}",
            f"Set the label {QUEUE_LABEL}: {team.queue} in metadata.labels: spaces in "
            f"{team.namespace} are queued by the task-governance quota of team {team.name}.",
        ),
        (
            f"has({label}) && {cel_string(PRIORITY_LABEL)} in {label} && "
            f"{label}[{cel_string(PRIORITY_LABEL)}] == {cel_string(team.priority_class)}",
            f"Set the label {PRIORITY_LABEL}: {team.priority_class} in metadata.labels, the "
            f"priority class of the spaces of team {team.name}.",
        ),
        (mig_expression(d.allowed_mig_profiles), mig_fix),
        (gpu_expression(d.max_gpus), gpu_fix),
    ]
    return {
        "apiVersion": ADMISSION_API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": admission_name(team), "labels": {"platform/team": team.name}},
        "spec": {
            # An expression that cannot be evaluated (an unparsable quantity) denies too.
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [WORKSPACE_GROUP],
                        "apiVersions": [WORKSPACE_VERSION],
                        "resources": [WORKSPACE_RESOURCE],
                        "operations": ["CREATE", "UPDATE"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: team.namespace}},
            },
            "matchConditions": [
                {
                    "name": "not-the-spaces-controller",
                    "expression": f"request.userInfo.username != {cel_string(CONTROLLER_USER)}",
                },
                {
                    # A stopped space holds nothing; starting it again is an UPDATE that is
                    # checked. So a space made before this policy can still be stopped.
                    "name": "space-would-run",
                    "expression": "!has(object.spec.desiredStatus) || "
                    "object.spec.desiredStatus != 'Stopped'",
                },
            ],
            "validations": [{"expression": e, "message": m} for e, m in validations],
        },
    }


def admission_binding(team: SpacesTeam) -> dict[str, Any]:
    """Binds the team's policy, denying (not only warning or auditing) what it refuses."""
    return {
        "apiVersion": ADMISSION_API_VERSION,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": admission_name(team), "labels": {"platform/team": team.name}},
        "spec": {"policyName": admission_name(team), "validationActions": ["Deny"]},
    }


class HyperPodSpaces(Construct):
    """The Spaces add-on with its prerequisites, identities, templates and user access."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        eks_cluster: HyperPodEksCluster,
        hyperpod_cluster: cdk.CfnResource,
        hyperpod_cluster_arn: str,
        versions: Mapping[str, str],
        controller_role_name: str,
        ssm_role_name: str,
        ebs_csi_role_name: str,
        teams: Sequence[SpacesTeam],
        template_names: Mapping[tuple[str, str], str],
        defaults: SpaceDefaults,
        team_namespaces_ready: Mapping[str, Construct],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        cluster = eks_cluster.cluster
        self._cluster_name = cluster.cluster_name

        self.ebs_csi_role, ebs_identity = eks_cluster.managed_identity(
            self,
            "EbsCsi",
            role_name=ebs_csi_role_name,
            policy=EBS_CSI_POLICY,
            why="The AWS policy the EKS guide names for the EBS CSI controller (create, attach "
            "and snapshot the spaces' home volumes); AWS versions it with the driver.",
            namespace=EBS_CSI_NAMESPACE,
            service_account=EBS_CSI_SERVICE_ACCOUNT,
        )
        volumes = iam.Policy(
            self,
            "ClusterVolumes",
            statements=[
                iam.PolicyStatement(
                    actions=list(CLUSTER_VOLUME_ACTIONS), resources=[hyperpod_cluster_arn]
                )
            ],
        )
        self._inline(
            self.ebs_csi_role,
            volumes,
            "Attach/detach volumes on this BU's one HyperPod cluster, for the EBS CSI role "
            "alone; not a policy any other principal should hold.",
        )

        # Remote access registers each space as an SSM managed node with this role (SSM hybrid
        # activations: the role trusts ssm.amazonaws.com; confused-deputy keys per the SSM user
        # guide, "Create the IAM service role required for Systems Manager in hybrid and
        # multicloud environments"); sts:TagSession as the add-on's own setup guide trusts it
        # (jupyter-k8s-aws charts/aws-hyperpod/README-SSM-Setup.md, step 1.1).
        self.ssm_role = iam.Role(
            self,
            "SsmNodeRole",
            role_name=ssm_role_name,
            assumed_by=iam.SessionTagsPrincipal(
                iam.ServicePrincipal(
                    "ssm.amazonaws.com",
                    conditions={
                        "StringEquals": {"aws:SourceAccount": stack.account},
                        "ArnLike": {
                            "aws:SourceArn": stack.format_arn(
                                service="ssm",
                                resource="*",
                                arn_format=cdk.ArnFormat.NO_RESOURCE_NAME,
                            )
                        },
                    },
                )
            ),
        )
        attach_managed_policy(
            self.ssm_role,
            SSM_NODE_POLICY,
            "The AWS policy SSM documents for a managed node (register, receive sessions); the "
            "spaces' SSM agents use it for remote IDE sessions only.",
        )

        # The controller policy conditions on the `eks-cluster-arn` principal tag, which only
        # Pod Identity sets (AWS managed policy reference, AmazonSageMakerSpacesControllerPolicy).
        self.controller_role, controller_identity = eks_cluster.managed_identity(
            self,
            "Controller",
            role_name=controller_role_name,
            policy=CONTROLLER_POLICY,
            why="The AWS policy the Spaces add-on documents for its controller (SSM activations "
            "and sessions for the cluster's own spaces); AWS versions it with the add-on.",
            namespace=SYSTEM_NAMESPACE,
            service_account=CONTROLLER_SERVICE_ACCOUNT,
        )
        pass_ssm = iam.Policy(
            self,
            "PassSsmRole",
            statements=[
                iam.PolicyStatement(
                    actions=["iam:PassRole"],
                    resources=[self.ssm_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}},
                )
            ],
        )
        self._inline(
            self.controller_role,
            pass_ssm,
            "iam:PassRole of the one SSM managed-node role, to SSM only, for the Spaces "
            "controller alone.",
        )

        addons = eks_cluster.addons
        self.ebs_csi_driver = self._addon(EBS_CSI_ADDON, versions[EBS_CSI_ADDON])
        for need in (addons["eks-pod-identity-agent"], ebs_identity, hyperpod_cluster):
            self.ebs_csi_driver.node.add_dependency(need)
        # The admission policies go in before the add-on brings the Workspace CRD, so no space
        # is ever admitted without them (a policy needs no CRD to exist).
        self.admission = eks.KubernetesManifest(
            self,
            "Admission",
            cluster=cluster,  # type: ignore[arg-type]  # jsii protocol gap
            manifest=[
                obj
                for team in teams
                for obj in (
                    admission_policy(
                        team,
                        [template_names[(team.name, app)] for app in defaults.apps],
                        defaults,
                    ),
                    admission_binding(team),
                )
            ],
            overwrite=True,
        )
        self.addon = self._addon(SPACES_ADDON, versions[SPACES_ADDON])
        # Tokens inside the JSON string resolve to an Fn::Join at synthesis.
        self.addon.configuration_values = json.dumps(
            addon_configuration(ssm_role_name=self.ssm_role.role_name)
        )
        for need in (
            addons["cert-manager"],
            addons["eks-pod-identity-agent"],
            self.ebs_csi_driver,
            controller_identity,
            hyperpod_cluster,
        ):
            self.addon.node.add_dependency(need)
        self.addon.node.add_dependency(self.admission)

        # The add-on brings the CRDs: the templates wait for it.
        self.templates = eks.KubernetesManifest(
            self,
            "Templates",
            cluster=cluster,  # type: ignore[arg-type]  # jsii protocol gap
            manifest=[
                workspace_template(team, app, template_names[(team.name, app)], defaults)
                for team in teams
                for app in defaults.apps
            ],
            overwrite=True,
        )
        self.templates.node.add_dependency(self.addon)

        self.access_entries: dict[str, eks.AccessEntry] = {}
        for team in teams:
            patch = eks.KubernetesPatch(
                self,
                f"PodSecurity-{team.name}",
                cluster=cluster,  # type: ignore[arg-type]  # jsii protocol gap
                resource_name=f"namespace/{team.namespace}",
                apply_patch={"metadata": {"labels": {POD_SECURITY_LABEL: POD_SECURITY_LEVEL}}},
                # A null (label removal) does not survive jsii; `privileged` is what a namespace
                # without the label enforces (Kubernetes docs, "Pod Security Admission").
                restore_patch={"metadata": {"labels": {POD_SECURITY_LABEL: "privileged"}}},
                patch_type=eks.PatchType.MERGE,
            )
            patch.node.add_dependency(team_namespaces_ready[team.name])
        # One access entry per principal (EKS allows one): a role shared by teams gets each
        # team's namespace in the same namespace-scoped association.
        namespaces: dict[str, list[str]] = {}
        for team in teams:
            for arn in team.user_role_arns:
                namespaces.setdefault(arn, []).append(team.namespace)
        for i, (arn, scoped) in enumerate(sorted(namespaces.items())):
            self.access_entries[arn] = eks.AccessEntry(
                self,
                f"SpaceUser{i}",
                cluster=cluster,  # type: ignore[arg-type]  # jsii protocol gap
                principal=arn,
                access_policies=[
                    eks.AccessPolicy.from_access_policy_name(
                        SPACE_POLICY,
                        access_scope_type=eks.AccessScopeType.NAMESPACE,
                        namespaces=sorted(scoped),
                    ),
                    eks.AccessPolicy.from_access_policy_name(
                        SPACE_TEMPLATE_POLICY,
                        access_scope_type=eks.AccessScopeType.NAMESPACE,
                        namespaces=[SYSTEM_NAMESPACE],
                    ),
                ],
            )

    def _addon(self, name: str, version: str) -> eks.CfnAddon:
        return pinned_addon(
            self, f"Addon-{name}", cluster_name=self._cluster_name, name=name, version=version
        )

    @staticmethod
    def _inline(role: iam.Role, policy: iam.Policy, why: str) -> None:
        """``policy`` attached to ``role`` alone: an inline policy, which no other principal
        can hold (``why`` answers the finding that asks for a managed one)."""
        role.attach_inline_policy(policy)
        acknowledge_grant(policy, {}, inline_reason=why)
