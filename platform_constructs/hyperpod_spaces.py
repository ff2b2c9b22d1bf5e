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
  breaks space pods) and EKS access entries for the roles its members use.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from platform_constructs.gates import acknowledge, acknowledge_grant
from platform_constructs.hyperpod_eks import HyperPodEksCluster, pod_identity_role

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
ALLOWED_MIG_ANNOTATION = "platform/allowed-mig-profiles"


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
            "resourceBounds": {"gpu": {"min": "0", "max": str(d.max_gpus)}},
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
            "idleShutdownOverrides": {
                "allow": True,
                "maxTimeoutMinutes": d.idle_shutdown_minutes,
            },
            "defaultAccessStrategy": {"name": ACCESS_STRATEGY, "namespace": SYSTEM_NAMESPACE},
            "allowSecondaryStorages": True,
            "appType": app,
        },
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

        self.ebs_csi_role = pod_identity_role(self, "EbsCsiRole", role_name=ebs_csi_role_name)
        self._managed(
            self.ebs_csi_role,
            EBS_CSI_POLICY,
            "The AWS policy the EKS guide names for the EBS CSI controller (create, attach and "
            "snapshot the spaces' home volumes); AWS versions it with the driver.",
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
        self.ebs_csi_role.attach_inline_policy(volumes)
        acknowledge_grant(
            volumes,
            {},
            inline_reason="Attach/detach volumes on this BU's one HyperPod cluster, for the EBS "
            "CSI role alone; not a policy any other principal should hold.",
        )
        ebs_identity = eks_cluster.bind_service_account(
            "EbsCsiIdentity",
            role=self.ebs_csi_role,
            namespace=EBS_CSI_NAMESPACE,
            service_account=EBS_CSI_SERVICE_ACCOUNT,
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
        self._managed(
            self.ssm_role,
            SSM_NODE_POLICY,
            "The AWS policy SSM documents for a managed node (register, receive sessions); the "
            "spaces' SSM agents use it for remote IDE sessions only.",
        )

        # The controller policy conditions on the `eks-cluster-arn` principal tag, which only
        # Pod Identity sets (AWS managed policy reference, AmazonSageMakerSpacesControllerPolicy).
        self.controller_role = pod_identity_role(
            self, "ControllerRole", role_name=controller_role_name
        )
        self._managed(
            self.controller_role,
            CONTROLLER_POLICY,
            "The AWS policy the Spaces add-on documents for its controller (SSM activations and "
            "sessions for the cluster's own spaces); AWS versions it with the add-on.",
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
        self.controller_role.attach_inline_policy(pass_ssm)
        acknowledge_grant(
            pass_ssm,
            {},
            inline_reason="iam:PassRole of the one SSM managed-node role, to SSM only, for the "
            "Spaces controller alone.",
        )
        controller_identity = eks_cluster.bind_service_account(
            "ControllerIdentity",
            role=self.controller_role,
            namespace=SYSTEM_NAMESPACE,
            service_account=CONTROLLER_SERVICE_ACCOUNT,
        )

        addons = eks_cluster.addons
        self.ebs_csi_driver = self._addon(EBS_CSI_ADDON, versions[EBS_CSI_ADDON])
        for need in (addons["eks-pod-identity-agent"], ebs_identity, hyperpod_cluster):
            self.ebs_csi_driver.node.add_dependency(need)
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
        return eks.CfnAddon(
            self,
            f"Addon-{name}",
            cluster_name=self._cluster_name,
            addon_name=name,
            addon_version=version,
            resolve_conflicts="OVERWRITE",  # the config owns the version
            preserve_on_delete=False,
        )

    @staticmethod
    def _managed(role: iam.Role, policy: str, why: str) -> None:
        role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name(policy))
        acknowledge(
            role, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]", why
        )
