"""The HyperPod stack of every BU with a ``hyperpod`` section: intent checked with Match."""

import json
from pathlib import Path
from typing import Any

import cfnlint
import pytest
from aws_cdk.assertions import Match, Template

from config.hyperpod import ADDON_NAMES
from config.regions import AVAILABILITY_ZONES, HYPERPOD_RESOURCE_TYPES
from core import parameters as params


@pytest.fixture
def template(synthesized: Any, bu: str) -> Template:
    """The BU's HyperPod stack."""
    return synthesized.template(bu, "hyperpod")


@pytest.fixture
def hp(synthesized: Any, bu: str) -> Any:
    """The BU's ``hyperpod`` section."""
    return synthesized.configs[bu].hyperpod


def test_only_bus_with_a_section_get_the_stack(synthesized) -> None:
    for bu, cfg in synthesized.configs.items():
        assert ((bu, "hyperpod") in synthesized.templates) == (cfg.hyperpod is not None)
    assert synthesized.stages["fraud"].hyperpod.stack_name == "fraud-hyperpod"


def test_eks_is_private_api_auth_logged_and_encrypted(bu: str, template: Template, hp: Any) -> None:
    template.has_resource_properties(
        "AWS::EKS::Cluster",
        {
            "Name": f"{bu}-eks",
            "Version": hp.kubernetes_version,
            "ResourcesVpcConfig": Match.object_like(
                {"EndpointPrivateAccess": True, "EndpointPublicAccess": False}
            ),
            "AccessConfig": Match.object_like({"AuthenticationMode": "API"}),
            "Logging": {
                "ClusterLogging": {
                    "EnabledTypes": [
                        {"Type": t}
                        for t in ("api", "audit", "authenticator", "controllerManager", "scheduler")
                    ]
                }
            },
            "EncryptionConfig": [
                {"Provider": {"KeyArn": Match.any_value()}, "Resources": ["secrets"]}
            ],
        },
    )


def test_access_entries_for_admins(synthesized, bu: str, template: Template, hp: Any) -> None:
    account = synthesized.configs[bu].account
    entries = [e["Properties"] for e in template.find_resources("AWS::EKS::AccessEntry").values()]
    for role in hp.admin_roles:
        (admin,) = [e for e in entries if f":iam::{account}:role/{role}" in json.dumps(e)]
        (policy,) = admin["AccessPolicies"]
        assert policy["AccessScope"] == {"Type": "cluster"}
        assert "AmazonEKSClusterAdminPolicy" in json.dumps(policy["PolicyArn"])
    # The nodes' entry is HyperPod's own (tests/deploy_contract/test_hyperpod_contract.py).
    assert [e for e in entries if e.get("Type") == "HYPERPOD_LINUX"] == []


def test_every_addon_at_its_pinned_version_in_order(template: Template, hp: Any) -> None:
    addons = template.find_resources("AWS::EKS::Addon")
    by_name = {a["Properties"]["AddonName"]: (lid, a) for lid, a in addons.items()}
    for field, name in ADDON_NAMES.items():
        assert by_name[name][1]["Properties"]["AddonVersion"] == getattr(hp.addons, field)
        assert "PodIdentityAssociations" not in by_name[name][1]["Properties"]
    for operator in (
        "amazon-sagemaker-hyperpod-training-operator",
        "amazon-sagemaker-hyperpod-observability",
    ):
        depends = by_name[operator][1]["DependsOn"]
        assert by_name["cert-manager"][0] in depends
        assert by_name["eks-pod-identity-agent"][0] in depends


def test_separate_pod_identity_associations(
    synthesized, bu: str, template: Template, hp: Any
) -> None:
    template.has_resource_properties(
        "AWS::EKS::PodIdentityAssociation",
        {
            "Namespace": "aws-hyperpod",
            "ServiceAccount": "hp-training-operator-controller-manager",
            "RoleArn": Match.any_value(),
        },
    )
    for team in hp.teams:
        template.has_resource_properties(
            "AWS::EKS::PodIdentityAssociation",
            {"Namespace": team.namespace, "ServiceAccount": "training"},
        )
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "RoleName": f"{bu}-hyperpod-training-operator-{synthesized.configs[bu].region}",
            "ManagedPolicyArns": [
                Match.object_like(
                    {
                        "Fn::Join": [
                            "",
                            Match.array_with(
                                [
                                    Match.string_like_regexp(
                                        "AmazonSageMakerHyperPodTrainingOperatorAccess"
                                    )
                                ]
                            ),
                        ]
                    }
                )
            ],
            "AssumeRolePolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": Match.any_value(),
                                "Principal": {"Service": "pods.eks.amazonaws.com"},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_hyperpod_cluster_groups_and_mig_labels(bu: str, template: Template, hp: Any) -> None:
    groups = [
        Match.object_like(
            {
                "InstanceGroupName": "system",
                "InstanceType": hp.system_group.instance_type,
                "InstanceCount": hp.system_group.count,
            }
        )
    ]
    for group in hp.gpu_groups:
        labels: dict[str, str] = {"platform/group": group.name}
        if group.mig_label:
            labels["nvidia.com/mig.config"] = group.mig_label
        groups.append(
            Match.object_like(
                {
                    "InstanceGroupName": group.name,
                    "InstanceType": group.instance_type,
                    "InstanceCount": group.count,
                    "ThreadsPerCore": group.threads_per_core,
                    "OnStartDeepHealthChecks": list(group.deep_health_checks),
                    "KubernetesConfig": {"Labels": labels},
                    "InstanceStorageConfigs": [
                        {
                            "EbsVolumeConfig": {
                                "VolumeSizeInGB": group.ebs_volume_gb,
                                "VolumeKmsKeyId": Match.any_value(),
                            }
                        }
                    ],
                    "LifeCycleConfig": {
                        "SourceS3Uri": Match.string_like_regexp(
                            rf"^s3://{bu}-hyperpod-lifecycle-.*/lifecycle/eks/$"
                        ),
                        "OnCreate": "on_create.sh",
                    },
                }
            )
        )
    template.has_resource_properties(
        "AWS::SageMaker::Cluster",
        {
            "ClusterName": f"{bu}-hyperpod",
            "NodeRecovery": "Automatic",
            "Orchestrator": {"Eks": {"ClusterArn": Match.any_value()}},
            "VpcConfig": {"SecurityGroupIds": [Match.any_value()], "Subnets": [Match.any_value()]},
            "InstanceGroups": groups,
        },
    )
    assert any(g.mig_label for g in hp.gpu_groups)
    assert any(not g.mig for g in hp.gpu_groups)


def test_security_group_admits_only_itself(template: Template) -> None:
    groups = template.find_resources(
        "AWS::EC2::SecurityGroup",
        {"Properties": {"GroupDescription": Match.string_like_regexp("HyperPod nodes")}},
    )
    (group_id,) = groups
    assert "SecurityGroupIngress" not in groups[group_id]["Properties"]
    ingress = template.find_resources("AWS::EC2::SecurityGroupIngress").values()
    own = {"Fn::GetAtt": [group_id, "GroupId"]}
    # Every rule's source is the group itself (FSx adds its Lustre ports the same way).
    assert ingress
    assert all(r["Properties"]["SourceSecurityGroupId"] == own for r in ingress)
    assert all("CidrIp" not in r["Properties"] for r in ingress)
    assert any(r["Properties"]["IpProtocol"] == "-1" for r in ingress)


def test_quotas_with_partitions_and_scheduler(bu: str, template: Template, hp: Any) -> None:
    template.has_resource_properties(
        "AWS::SageMaker::ClusterSchedulerConfig",
        {
            "Name": f"{bu}-scheduler",
            "SchedulerConfig": {
                "PriorityClasses": [
                    {"Name": p.name, "Weight": p.weight} for p in hp.scheduler.priority_classes
                ],
                "FairShare": "Enabled",
                "IdleResourceSharing": "Enabled",
            },
        },
    )
    for team in hp.teams:
        resources = []
        for quota in hp.quotas_of(team.name):
            resource: dict[str, Any] = {"InstanceType": quota.instance_type}
            if quota.gpus:
                resource["Accelerators"] = quota.gpus
            if quota.mig:
                resource["AcceleratorPartition"] = {
                    "Type": f"mig-{quota.mig.profile}",
                    "Count": quota.mig.count,
                }
            resources.append(resource)
        assert any("AcceleratorPartition" in r for r in resources)
        template.has_resource_properties(
            "AWS::SageMaker::ComputeQuota",
            {
                "Name": f"{bu}-quota-{team.name}",
                "ComputeQuotaTarget": {
                    "TeamName": team.name,
                    "FairShareWeight": team.fair_share_weight,
                },
                "ComputeQuotaConfig": {
                    "ComputeQuotaResources": resources,
                    "PreemptTeamTasks": team.preempt,
                    "ResourceSharingConfig": Match.object_like({"Strategy": team.sharing}),
                },
            },
        )


def test_fsx_encrypted_in_the_node_subnet(template: Template, hp: Any) -> None:
    template.has_resource_properties(
        "AWS::FSx::FileSystem",
        {
            "FileSystemType": "LUSTRE",
            "KmsKeyId": Match.any_value(),
            "StorageCapacity": hp.fsx.storage_capacity_gib,
            "SubnetIds": [Match.any_value()],
            "LustreConfiguration": Match.object_like(
                {
                    "DeploymentType": hp.fsx.deployment_type,
                    "PerUnitStorageThroughput": hp.fsx.throughput_mbps_per_tib,
                }
            ),
        },
    )


def _manifests(template: Template) -> list[dict[str, Any]]:
    objects = []
    for resource in template.find_resources("Custom::AWSCDK-EKS-KubernetesResource").values():
        manifest = resource["Properties"]["Manifest"]
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        # Tokens (FSx id, DNS name) stay as Fn::Join parts; the structure is what we check.
        objects.append({"raw": text})
    return objects


def test_team_namespaces_service_accounts_and_claims(template: Template, hp: Any) -> None:
    texts = " ".join(m["raw"] for m in _manifests(template))
    for team in hp.teams:
        for needle in (
            f'\\"name\\":\\"{team.namespace}\\"',
            f'\\"name\\":\\"fsx-{team.name}\\"',
            '\\"kind\\":\\"PersistentVolumeClaim\\"',
            '\\"driver\\":\\"fsx.csi.aws.com\\"',
            '\\"kind\\":\\"ServiceAccount\\"',
        ):
            assert needle in texts or needle.replace("\\", "") in texts, needle
    assert "mig-configs" in texts
    for group in hp.gpu_groups:  # every MIG layout of the config reaches the MIG manager
        if isinstance(group.mig, str):
            assert group.mig in texts


def test_chart_from_the_bus_private_ecr_pinned(
    synthesized, bu: str, template: Template, hp: Any
) -> None:
    account, region = synthesized.configs[bu].account, synthesized.configs[bu].region
    charts = template.find_resources("Custom::AWSCDK-EKS-HelmChart")
    (chart,) = charts.values()
    props = chart["Properties"]
    repository = props["Repository"]
    text = repository if isinstance(repository, str) else json.dumps(repository)
    assert f"oci://{account}.dkr.ecr.{region}." in text
    assert f"/{bu}/hyperpod-helm-chart" in text
    assert "github" not in text
    assert "public.ecr.aws" not in text
    assert props["Version"] == hp.dependencies_chart.version
    values_text = json.dumps(props["Values"])
    # The digest reaches the values only through the deploy-time check (contract tests).
    assert "DigestCheck" in values_text
    assert '\\"gpu-operator\\":{\\"enabled\\":true' in values_text
    assert '\\"nvidia-device-plugin\\":{\\"devicePlugin\\":{\\"enabled\\":false}}' in values_text


def test_ssm_parameters_for_training_job(synthesized, bu: str, template: Template, hp: Any) -> None:
    names = synthesized.configs[bu].naming
    template.has_resource_properties(
        "AWS::SSM::Parameter",
        {"Name": names.parameter(params.HYPERPOD_CLUSTER_NAME), "Value": f"{bu}-hyperpod"},
    )
    template.has_resource_properties(
        "AWS::SSM::Parameter",
        {"Name": names.parameter(params.EKS_CLUSTER_NAME), "Value": Match.any_value()},
    )
    for name in (params.HYPERPOD_CLUSTER_ARN, params.PROMETHEUS_WORKSPACE):
        template.has_resource_properties(
            "AWS::SSM::Parameter", {"Name": names.parameter(name), "Value": Match.any_value()}
        )
    for team in hp.teams:
        expected = {
            params.TEAM_NAMESPACE: team.namespace,
            params.TEAM_QUEUE: team.queue,
            params.TEAM_SERVICE_ACCOUNT: "training",
            params.TEAM_FSX_CLAIM: "fsx-claim",
        }
        for name, value in expected.items():
            template.has_resource_properties(
                "AWS::SSM::Parameter",
                {"Name": names.parameter(params.team_parameter(name, team.name)), "Value": value},
            )


def test_prometheus_workspace_encrypted_and_fed_by_the_addon(template: Template) -> None:
    template.has_resource_properties("AWS::APS::Workspace", {"KmsKeyArn": Match.any_value()})
    template.has_resource_properties(
        "AWS::EKS::Addon",
        {
            "AddonName": "amazon-sagemaker-hyperpod-observability",
            "ConfigurationValues": Match.any_value(),
        },
    )


def test_workload_roles_scoped_grants_and_mlflow(synthesized) -> None:
    """fraud has a tracking server: each team role gets its data plane through grant_access."""
    template = synthesized.template("fraud", "hyperpod")
    cfg = synthesized.configs["fraud"]
    hp = cfg.hyperpod
    assert hp is not None
    assert cfg.mlflow is not None
    assert cfg.mlflow.kind == "tracking_server"
    names = cfg.naming
    for team in cfg.hyperpod.teams:
        role_name = names.role(f"hyperpod-team-{team.name}")
        roles = template.find_resources("AWS::IAM::Role", {"Properties": {"RoleName": role_name}})
        (role_id,) = roles
        policies = template.find_resources(
            "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role_id}]}}
        )
        (policy,) = policies.values()
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        text = json.dumps(statements)
        assert "sagemaker-mlflow:LogMetric" in text
        for bucket in ("checkpoints", "models"):
            assert f"{names.bucket(bucket)}/{team.name}/*" in text
        assert f"{names.bucket('data')}/*" in text
        others = [t.name for t in cfg.hyperpod.teams if t.name != team.name]
        for other in others:
            assert f"/{other}/*" not in text
        writes = [s for s in statements if any(a.startswith("s3:Put") for a in _actions(s))]
        for statement in writes:
            resources = json.dumps(statement["Resource"])
            assert names.bucket("data") not in resources  # the data bucket is read-only
        assert '"*"' not in json.dumps([s["Resource"] for s in statements])


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_every_type_some_region_lacks_is_in_the_hyperpod_region_table(template: Template) -> None:
    """config.regions.HYPERPOD_REGIONS is right only if HYPERPOD_RESOURCE_TYPES lists every
    type of this stack that one of the known regions' registries (cfn-lint's) lacks."""
    providers = Path(cfnlint.__file__).parent / "data" / "schemas" / "providers"
    registries = [
        set(json.loads((providers / f"{region}.json").read_text(encoding="utf-8")))
        for region in AVAILABILITY_ZONES
    ]
    resources = template.to_json()["Resources"]
    types = {r["Type"] for r in resources.values()}
    regional = {t for t in types if t.startswith("AWS::") and any(t not in r for r in registries)}
    assert regional <= set(HYPERPOD_RESOURCE_TYPES)
