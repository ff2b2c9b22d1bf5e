"""Kubernetes objects and chart values the HyperPod stack applies, built with the kubernetes
client's models: the MIG manager knows every layout a group's label names, teams' claims bind
only their own volume."""

import yaml

from config.hyperpod import GpuGroup
from platform_constructs.hyperpod_chart import ChartRegistries, chart_values, mig_config_map
from platform_constructs.hyperpod_workloads import WorkloadTeam, team_objects
from stacks.hyperpod_stack import mig_layouts


def test_mig_config_map_holds_each_groups_layout() -> None:
    groups = [
        GpuGroup(name="a", instance_type="ml.p5en.48xlarge", mig="all-1g.18gb"),
        GpuGroup.model_validate(
            {
                "name": "b",
                "instance_type": "ml.p4d.24xlarge",
                "mig": {"profiles": {"3g.20gb": 1, "4g.20gb": 1}},
            }
        ),
        GpuGroup(name="c", instance_type="ml.p5.48xlarge"),
    ]
    config_map = mig_config_map(mig_layouts(groups))
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"] == {"name": "platform-mig-config", "namespace": "kube-system"}
    layouts = yaml.safe_load(config_map["data"]["config.yaml"])["mig-configs"]
    assert layouts["all-1g.18gb"] == [
        {"devices": "all", "mig-enabled": True, "mig-devices": {"1g.18gb": 7}}
    ]
    assert layouts["mixed-1-3g.20gb-1-4g.20gb"][0]["mig-devices"] == {"3g.20gb": 1, "4g.20gb": 1}
    assert layouts["all-disabled"] == [{"devices": "all", "mig-enabled": False}]
    assert set(layouts) == {g.mig_label for g in groups if g.mig_label} | {"all-disabled"}


def test_chart_values_switch_device_plugins_for_mig() -> None:
    """NVIDIA's chart sits inside HyperPod's `gpu-operator` wrapper, so its settings nest twice
    (sagemaker-hyperpod-cli a00b22d, regional-values/values-us-east-1.yaml)."""
    registries = ChartRegistries(own="own.example", eks="eks.example", gpu_operator_mirror="gpu.ex")
    bu = {"bu": "fraud", "region": "us-east-1", "registries": registries}
    with_mig, without = chart_values(**bu, mig=True), chart_values(**bu, mig=False)
    assert with_mig["gpu-operator"]["enabled"] is True
    nvidia = with_mig["gpu-operator"]["gpu-operator"]
    assert nvidia["migManager"]["config"] == {
        "create": False,
        "name": "platform-mig-config",
        "default": "all-disabled",
    }
    assert nvidia["mig"] == {"strategy": "mixed"}
    assert nvidia["driver"] == {"enabled": False}
    assert "migManager" not in with_mig["gpu-operator"]  # the wrapper would swallow it
    assert with_mig["nvidia-device-plugin"]["devicePlugin"]["enabled"] is False
    assert without["gpu-operator"] == {"enabled": False}
    assert without["nvidia-device-plugin"]["devicePlugin"]["enabled"] is True
    for values in (with_mig, without):
        assert values["cert-manager"]["enabled"] is False  # the add-on provides it
        assert values["neuron-device-plugin"]["devicePlugin"]["enabled"] is False
        assert values["health-monitoring-agent"]["region"] == "us-east-1"
        efa = values["aws-efa-k8s-device-plugin"]["image"]["repository"]
        assert efa == "eks.example/eks/aws-efa-k8s-device-plugin"
        assert values["training-operators"]["image"]["repository"] == (
            "own.example/fraud/hyperpod-mirror/training-operator"
        )
    assert nvidia["operator"] == {"repository": "gpu.ex"}
    assert nvidia["migManager"]["repository"] == "gpu.ex/mirror-cloud-native"


def test_team_objects_bind_the_claim_to_its_own_volume() -> None:
    objects = team_objects(
        WorkloadTeam(name="nlp", namespace="hyperpod-ns-nlp", role_name="r", pv_name="fsx-nlp"),
        fsx_id="fs-0123",
        fsx_dns="fs-0123.fsx.us-east-1.amazonaws.com",
        fsx_mount="abcdef",
        capacity_gib=1200,
    )
    kinds = [o["kind"] for o in objects]
    assert kinds == ["Namespace", "ServiceAccount", "PersistentVolume", "PersistentVolumeClaim"]
    namespace, account, volume, claim = objects
    assert namespace["metadata"]["name"] == "hyperpod-ns-nlp"
    assert account["metadata"] == {
        "name": "training",
        "namespace": "hyperpod-ns-nlp",
        "labels": {"platform/team": "nlp"},
    }
    assert volume["spec"]["csi"] == {
        "driver": "fsx.csi.aws.com",
        "volumeHandle": "fs-0123",
        "volumeAttributes": {
            "dnsname": "fs-0123.fsx.us-east-1.amazonaws.com",
            "mountname": "abcdef",
        },
    }
    assert volume["spec"]["claimRef"] == {"name": "fsx-claim", "namespace": "hyperpod-ns-nlp"}
    assert claim["spec"]["volumeName"] == "fsx-nlp"
    assert claim["metadata"]["namespace"] == "hyperpod-ns-nlp"
    assert claim["spec"]["storageClassName"] == ""  # static binding, no provisioner


def test_optional_grafana_reads_only_the_workspace() -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_iam as iam
    from aws_cdk import aws_kms as kms
    from aws_cdk.assertions import Match, Template

    from platform_constructs.gates import PACKS
    from platform_constructs.hyperpod_observability import MetricsWorkspace

    app = cdk.App()
    stack = cdk.Stack(
        app, "Metrics", env=cdk.Environment(account="111111111111", region="us-east-1")
    )
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    collector = iam.Role(
        stack, "Collector", assumed_by=iam.ServicePrincipal("pods.eks.amazonaws.com")
    )
    MetricsWorkspace(
        stack,
        "M",
        alias="t-metrics",
        key=key,
        collector_role=collector,
        cluster_log_groups=None,
        grafana_name="t-metrics",
    )
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::Grafana::Workspace",
        {
            "AuthenticationProviders": ["AWS_SSO"],
            "AccountAccessType": "CURRENT_ACCOUNT",
            "DataSources": ["PROMETHEUS"],
            "RoleArn": Match.any_value(),
        },
    )
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "aps:RemoteWrite",
                                "Resource": {"Fn::GetAtt": [Match.any_value(), "Arn"]},
                            }
                        )
                    ]
                )
            }
        },
    )
    for pack in PACKS:
        assert [v.rule_name for v in pack().validate_scope(stack).violations] == []


def test_observability_addon_configuration_levels_from_config() -> None:
    import json

    from config.hyperpod import Observability
    from platform_constructs.hyperpod_observability import addon_configuration
    from stacks.hyperpod_stack import METRIC_GROUPS, addon_settings

    settings = addon_settings(Observability(node_metrics="ADVANCED", scrape_interval_seconds=60))
    values = json.loads(
        addon_configuration(
            settings, prometheus_endpoint="https://e/", workspace_arn="arn:w", grafana=None
        )
    )
    assert values["ampWorkspace"] == {"prometheusEndpoint": "https://e/", "arn": "arn:w"}
    assert list(values["metricsProvider"]) == list(METRIC_GROUPS.values())
    assert values["metricsProvider"]["nodeMetrics"] == {"level": "ADVANCED", "scrapeInterval": 60}
    assert values["metricsProvider"]["acceleratedComputeMetrics"]["level"] == "ADVANCED"
    assert "amgWorkspace" not in values
    with_grafana = json.loads(
        addon_configuration(
            settings, prometheus_endpoint="e", workspace_arn="w", grafana=("g", "arn:g")
        )
    )
    assert with_grafana["amgWorkspace"] == {"workspaceName": "g", "arn": "arn:g"}
