"""What runs on the HyperPod cluster for the BU's teams: per-team identity and storage claims
(the dependencies chart and the MIG layouts are ``platform_constructs.hyperpod_chart``).

Kubernetes objects are built with the ``kubernetes`` client's models (typed, the same objects
``kubectl`` would send) and applied through the cluster's kubectl provider, one manifest per
team so a team's objects change together.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct
from kubernetes import client as k8s

from platform_constructs.access import MlflowAccess
from platform_constructs.gates import acknowledge_grant
from platform_constructs.hyperpod_eks import HyperPodEksCluster, pod_identity_role

SERVICE_ACCOUNT = "training"  # in each team namespace
FSX_CLAIM = "fsx-claim"
_API = k8s.ApiClient()


@dataclass(frozen=True)
class WorkloadTeam:
    """A team on the cluster: its namespace, its workload role's name and its FSx volume's."""

    name: str
    namespace: str
    role_name: str
    pv_name: str


def to_manifest(obj: Any) -> dict[str, Any]:
    """A kubernetes client model as the plain dict kubectl applies."""
    result: dict[str, Any] = _API.sanitize_for_serialization(obj)
    return result


def team_objects(
    team: WorkloadTeam, *, fsx_id: str, fsx_dns: str, fsx_mount: str, capacity_gib: int
) -> list[dict[str, Any]]:
    """The namespace (task governance creates it too; apply is idempotent), the workload
    service account, and a static FSx for Lustre volume with its claim."""
    labels = {"platform/team": team.name}
    namespace = k8s.V1Namespace(
        api_version="v1",
        kind="Namespace",
        metadata=k8s.V1ObjectMeta(name=team.namespace, labels=labels),
    )
    account = k8s.V1ServiceAccount(
        api_version="v1",
        kind="ServiceAccount",
        metadata=k8s.V1ObjectMeta(name=SERVICE_ACCOUNT, namespace=team.namespace, labels=labels),
    )
    volume = k8s.V1PersistentVolume(
        api_version="v1",
        kind="PersistentVolume",
        metadata=k8s.V1ObjectMeta(name=team.pv_name, labels=labels),
        spec=k8s.V1PersistentVolumeSpec(
            capacity={"storage": f"{capacity_gib}Gi"},
            access_modes=["ReadWriteMany"],
            persistent_volume_reclaim_policy="Retain",
            storage_class_name="",
            # Only this team's claim may bind this volume.
            claim_ref=k8s.V1ObjectReference(namespace=team.namespace, name=FSX_CLAIM),
            csi=k8s.V1CSIPersistentVolumeSource(
                driver="fsx.csi.aws.com",
                volume_handle=fsx_id,
                volume_attributes={"dnsname": fsx_dns, "mountname": fsx_mount},
            ),
            mount_options=["flock"],
        ),
    )
    claim = k8s.V1PersistentVolumeClaim(
        api_version="v1",
        kind="PersistentVolumeClaim",
        metadata=k8s.V1ObjectMeta(name=FSX_CLAIM, namespace=team.namespace, labels=labels),
        spec=k8s.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteMany"],
            storage_class_name="",
            volume_name=team.pv_name,
            resources=k8s.V1VolumeResourceRequirements(requests={"storage": f"{capacity_gib}Gi"}),
        ),
    )
    return [to_manifest(o) for o in (namespace, account, volume, claim)]


class TeamWorkloads(Construct):
    """Per team: a workload role reachable only from the team's service account, with the
    data bucket readable, the team's checkpoint and model prefixes writable, and MLflow."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        eks_cluster: HyperPodEksCluster,
        teams: Sequence[WorkloadTeam],
        data_bucket: s3.IBucket,
        checkpoints_bucket: s3.IBucket,
        models_bucket: s3.IBucket,
        fsx_id: str,
        fsx_dns: str,
        fsx_mount: str,
        fsx_capacity_gib: int,
        mlflow: MlflowAccess | None,
        after: Sequence[cdk.CfnResource],
    ) -> None:
        super().__init__(scope, construct_id)
        self.roles: dict[str, iam.Role] = {}
        self.manifests: dict[str, eks.KubernetesManifest] = {}
        for team in teams:
            role = pod_identity_role(self, f"Role-{team.name}", role_name=team.role_name)
            data_bucket.grant_read(role)
            checkpoints_bucket.grant_read_write(role, f"{team.name}/*")
            models_bucket.grant_read_write(role, f"{team.name}/*")
            if mlflow is not None:
                mlflow.grant_access(role)
            _acknowledge_workload_policy(
                role, team.name, data_bucket, checkpoints_bucket, models_bucket
            )
            eks_cluster.bind_service_account(
                f"Identity-{team.name}",
                role=role,
                namespace=team.namespace,
                service_account=SERVICE_ACCOUNT,
            )
            manifest = cdk_manifest(
                self,
                f"Objects-{team.name}",
                cluster=eks_cluster.cluster,
                objects=team_objects(
                    team,
                    fsx_id=fsx_id,
                    fsx_dns=fsx_dns,
                    fsx_mount=fsx_mount,
                    capacity_gib=fsx_capacity_gib,
                ),
            )
            for dependency in after:
                manifest.node.add_dependency(dependency)
            self.roles[team.name] = role
            self.manifests[team.name] = manifest


def cdk_manifest(
    scope: Construct, construct_id: str, *, cluster: eks.Cluster, objects: list[dict[str, Any]]
) -> eks.KubernetesManifest:
    # overwrite: the namespace may already exist (task governance creates it with the quota).
    return eks.KubernetesManifest(
        scope,
        construct_id,
        cluster=cluster,  # type: ignore[arg-type]  # jsii protocol gap
        manifest=objects,
        overwrite=True,
    )


# Findings the CDK grants raise on a workload role, each with why it is the narrowest form.
_WORKLOAD_FINDINGS = {
    "Action::s3:GetObject*": "CDK's read grant (GetObject, GetObjectVersion, tagging) on the "
    "BU's own data/checkpoint/model buckets; no other bucket is named.",
    "Action::s3:GetBucket*": "CDK's read grant needs GetBucketLocation/Versioning on the BU's "
    "own buckets so SDKs can resolve them; no other bucket is named.",
    "Action::s3:List*": "Listing the BU's data bucket and the team's prefixes is how a training "
    "job finds shards and its latest checkpoint; only these buckets are named.",
    "Action::s3:DeleteObject*": "A job rotates old checkpoints (save_total_limit) and replaces "
    "exports, only under its own team prefix of the checkpoints and models buckets.",
    "Action::s3:Abort*": "Large checkpoint uploads are multipart; aborting a failed one is "
    "allowed only under the team's own prefixes.",
    "Action::kms:GenerateDataKey*": "Writing SSE-KMS objects needs data keys from the BU's "
    "checkpoints and models keys only (no other key is named).",
    "Action::kms:ReEncrypt*": "CDK's read-write grant on the BU's checkpoint and model keys; "
    "S3 re-encrypts on copy within the team's prefixes.",
}


def _acknowledge_workload_policy(
    role: iam.Role,
    team: str,
    data: s3.IBucket,
    checkpoints: s3.IBucket,
    models: s3.IBucket,
) -> None:
    policy = role.node.find_child("DefaultPolicy")
    partition = cdk.Stack.of(role).partition
    findings = dict(_WORKLOAD_FINDINGS)
    findings[f"Resource::arn:{partition}:s3:::{data.bucket_name}/*"] = (
        "Every team reads the BU's whole data bucket (shared datasets); it cannot write it."
    )
    for bucket in (checkpoints, models):
        findings[f"Resource::arn:{partition}:s3:::{bucket.bucket_name}/{team}/*"] = (
            f"Team {team} reads and writes only its own prefix of this bucket."
        )
    acknowledge_grant(
        policy,
        findings,
        inline_reason="CDK grants write this role's policy for this one team role only; an inline "
        "policy cannot be attached to another principal by mistake.",
    )
