"""`make doctor`: a healthy fraud BU passes; each way a deployment can break fails exactly its row.

AWS answers come from botocore's Stubber on real boto3 clients (fake credentials, us-east-1), the
cluster from the fake Kubernetes API server (tests/harness/fake_kube.py) through the real
`kubernetes` client, the endpoint smoke test from `inference.smoke` itself."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from harness.fake_kube import FakeCluster, fake_kube_server, write_kubeconfig

from config.endpoints import HyperPodInferenceAddons
from config.loader import CONFIG_DIR, load_valid
from config.mlflow import Mlflow
from tools import doctor_checks as checks
from tools.doctor import main, parse_args, run_checks

CONFIG = load_valid([CONFIG_DIR / "fraud.yaml"])[0]
HP, STUDIO, ENDPOINTS = CONFIG.hyperpod, CONFIG.studio, CONFIG.endpoints
assert HP is not None
assert STUDIO is not None
assert ENDPOINTS is not None
ACCOUNT = CONFIG.account
EKS_ARN = f"arn:aws:eks:us-east-1:{ACCOUNT}:cluster/fraud-eks"
APP_ARN = f"arn:aws:sso::{ACCOUNT}:application/ssoins-7223a1b2c3d4e5f6/apl-0123456789abcdef"
DOMAIN_ID = "d-abcdef123456"
MLFLOW_ARN = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:mlflow-tracking-server/fraud-mlflow"
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
SERVICES = ("sts", "cloudformation", "sagemaker", "eks", "sso-admin", "ssm", "sagemaker-runtime")
GOOD_ANSWER = (
    "<think>\nThe user wants the Paris weather; call get_weather.\n</think>\n\n"
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}'
    "\n</tool_call>"
)
MIG = "nvidia.com/mig-1g.18gb"
# One session for the module: it caches the service models, so each test's clients are cheap.
SESSION = boto3.Session(
    region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
)


# --- a deployed BU as AWS and Kubernetes report it ----------------------------------------------


def _node(name: str, group: str, allocatable: dict[str, str], **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"platform/group": group, **labels}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "allocatable": {"cpu": "190", **allocatable},
        },
    }


def _queue(team: str, gpus: int = 8, slices: int = 28) -> dict[str, Any]:
    """A ClusterQueue as task governance writes it: one flavor per instance type."""
    return {
        "metadata": {"name": f"hyperpod-ns-{team}-clusterqueue"},
        "spec": {
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "nvidia.com/gpu", MIG],
                    "flavors": [
                        {
                            "name": "ml.p5.48xlarge",
                            "resources": [
                                {"name": "cpu", "nominalQuota": "96"},
                                {"name": "nvidia.com/gpu", "nominalQuota": gpus},
                            ],
                        },
                        {
                            "name": "ml.p5en.48xlarge",
                            "resources": [{"name": MIG, "nominalQuota": slices}],
                        },
                    ],
                }
            ]
        },
    }


def _claim(team: str, phase: str = "Bound") -> dict[str, Any]:
    namespace = f"hyperpod-ns-{team}"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "fsx-claim", "namespace": namespace},
        "spec": {"volumeName": f"fsx-{team}"},
        "status": {"phase": phase},
    }


def _cluster() -> FakeCluster:
    mig_state = {"nvidia.com/mig.config.state": "success"}
    return FakeCluster(
        nodes=[
            _node("hyperpod-i-system-0", "system", {}),
            _node("hyperpod-i-system-1", "system", {}),
            _node("hyperpod-i-mig-0", "h200-mig", {MIG: "56"}, **mig_state),
            _node("hyperpod-i-h100-0", "h100", {"nvidia.com/gpu": "8"}),
            _node("hyperpod-i-h100-1", "h100", {"nvidia.com/gpu": "8"}),
        ],
        cluster_queues=[_queue("scoring"), _queue("research")],
        claims={(f"hyperpod-ns-{t}", "fsx-claim"): _claim(t) for t in ("scoring", "research")},
    )


@dataclass
class Bu:
    """The fraud BU as deployed; a test breaks one part of it."""

    stacks: dict[str, str] = field(
        default_factory=lambda: dict.fromkeys(checks.stack_names(CONFIG), "CREATE_COMPLETE")
    )
    groups: dict[str, tuple[int, int]] = field(
        default_factory=lambda: {g: (n, n) for g, n in checks.instance_groups(HP).items()}
    )
    addons: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {n: ("ACTIVE", v) for n, v in checks.pinned_addons(CONFIG).items()}
    )
    tip: str = "ENABLED"
    assigned: list[str] = field(
        default_factory=lambda: (
            [u.user_id for u in STUDIO.users] + [g.group_id for g in STUDIO.groups]
        )
    )
    endpoints: dict[str, str] = field(
        default_factory=lambda: {
            CONFIG.naming.resource(e.name): "InService" for e in ENDPOINTS.items
        }
    )
    answer: str = GOOD_ANSWER
    cluster: FakeCluster = field(default_factory=_cluster)

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.cluster.nodes if n["metadata"]["name"] == name)


# --- stubbed AWS --------------------------------------------------------------------------------


@contextmanager
def stubbed_aws() -> Iterator[tuple[checks.Aws, dict[str, Stubber]]]:
    """Real clients of one session with fake credentials, each under an active Stubber."""
    aws = checks.Aws(SESSION)
    stubs = {service: Stubber(aws.client(service)) for service in SERVICES}
    for stub in stubs.values():
        stub.activate()
    yield aws, stubs
    for stub in stubs.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def _identity(stubs: dict[str, Stubber], account: str = ACCOUNT) -> None:
    arn = f"arn:aws:sts::{account}:assumed-role/platform-admin/doctor"
    stubs["sts"].add_response(
        "get_caller_identity", {"UserId": "AROAEXAMPLE:doctor", "Account": account, "Arn": arn}
    )


def _stack(stubs: dict[str, Stubber], name: str, status: str) -> None:
    stack = {"StackName": name, "CreationTime": NOW, "StackStatus": status}
    stubs["cloudformation"].add_response(
        "describe_stacks", {"Stacks": [stack]}, {"StackName": name}
    )


def _stacks(bu: Bu, stubs: dict[str, Stubber]) -> None:
    for name, status in bu.stacks.items():
        _stack(stubs, name, status)


def _hyperpod(bu: Bu, stubs: dict[str, Stubber]) -> None:
    groups = [
        {"InstanceGroupName": g, "CurrentCount": current, "TargetCount": target}
        for g, (current, target) in bu.groups.items()
    ]
    cluster = {
        "ClusterArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:cluster/abcdef123456",
        "ClusterName": "fraud-hyperpod",
        "ClusterStatus": "InService",
        "InstanceGroups": groups,
    }
    stubs["sagemaker"].add_response("describe_cluster", cluster, {"ClusterName": "fraud-hyperpod"})


def _addons(bu: Bu, stubs: dict[str, Stubber]) -> None:
    for name, (status, version) in bu.addons.items():
        addon: dict[str, Any] = {
            "addonName": name,
            "clusterName": "fraud-eks",
            "status": status,
            "addonVersion": version,
        }
        if status != "ACTIVE":
            addon["health"] = {
                "issues": [{"code": "InsufficientNumberOfReplicas", "message": "0/2"}]
            }
        stubs["eks"].add_response(
            "describe_addon", {"addon": addon}, {"clusterName": "fraud-eks", "addonName": name}
        )


def _studio(bu: Bu, stubs: dict[str, Stubber]) -> None:
    sm = stubs["sagemaker"]
    domains = [
        {"DomainId": "d-other0000000", "DomainName": "credit-studio"},
        {"DomainId": DOMAIN_ID, "DomainName": "fraud-studio", "Status": "InService"},
    ]
    sm.add_response("list_domains", {"Domains": domains}, {})
    domain = {
        "DomainId": DOMAIN_ID,
        "DomainName": "fraud-studio",
        "Status": "InService",
        "SingleSignOnApplicationArn": APP_ARN,
        "DomainSettings": {"TrustedIdentityPropagationSettings": {"Status": bu.tip}},
    }
    sm.add_response("describe_domain", domain, {"DomainId": DOMAIN_ID})
    for user in STUDIO.users:
        profile = {
            "DomainId": DOMAIN_ID,
            "UserProfileName": user.profile,
            "Status": "InService",
            "SingleSignOnUserIdentifier": "UserName",
            "SingleSignOnUserValue": user.user_name,
        }
        sm.add_response(
            "describe_user_profile",
            profile,
            {"DomainId": DOMAIN_ID, "UserProfileName": user.profile},
        )
    kinds = {u.user_id: "USER" for u in STUDIO.users}
    assignments = [
        {"ApplicationArn": APP_ARN, "PrincipalId": p, "PrincipalType": kinds.get(p, "GROUP")}
        for p in bu.assigned
    ]
    stubs["sso-admin"].add_response(
        "list_application_assignments",
        {"ApplicationAssignments": assignments},
        {"ApplicationArn": APP_ARN},
    )


def _mlflow(stubs: dict[str, Stubber]) -> None:
    server = {
        "TrackingServerArn": MLFLOW_ARN,
        "TrackingServerName": "fraud-mlflow",
        "TrackingServerStatus": "Created",
        "IsActive": "Active",
    }
    stubs["sagemaker"].add_response(
        "describe_mlflow_tracking_server", server, {"TrackingServerName": "fraud-mlflow"}
    )


def _describe_endpoint(stubs: dict[str, Stubber], name: str, status: str) -> None:
    described = {
        "EndpointName": name,
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/{name}",
        "EndpointConfigName": f"{name}-config",
        "EndpointStatus": status,
        "CreationTime": NOW,
        "LastModifiedTime": NOW,
    }
    stubs["sagemaker"].add_response("describe_endpoint", described, {"EndpointName": name})


def _answer(stubs: dict[str, Stubber], content: str) -> None:
    document = {
        "choices": [
            {"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 250, "completion_tokens": 40, "total_tokens": 290},
    }
    raw = json.dumps(document).encode()
    stubs["sagemaker-runtime"].add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(raw), len(raw)), "ContentType": "application/json"},
    )


def _endpoints(bu: Bu, stubs: dict[str, Stubber], *, smoke: bool) -> None:
    for name, status in bu.endpoints.items():
        _describe_endpoint(stubs, name, status)
        if smoke and status == "InService":  # inference.smoke describes it once more
            _describe_endpoint(stubs, name, status)
            _answer(stubs, bu.answer)


def _queue_aws(bu: Bu, stubs: dict[str, Stubber], *, smoke: bool = True) -> None:
    """Every AWS answer of one run, in the order the doctor asks (per client)."""
    _identity(stubs)
    _stacks(bu, stubs)
    _hyperpod(bu, stubs)
    _addons(bu, stubs)
    _studio(bu, stubs)
    _mlflow(stubs)
    _endpoints(bu, stubs, smoke=smoke)


def _tracking(arn: str) -> str:
    assert arn.endswith(":mlflow-tracking-server/fraud-mlflow")
    return "search_experiments answered"


def doctor(bu: Bu, tmp_path: Path, *extra: str, kubeconfig: Path | None = None) -> tuple[int, str]:
    """One `python -m tools.doctor --bu fraud` run against the stubs and the fake cluster."""
    out = io.StringIO()
    with fake_kube_server(bu.cluster) as url, stubbed_aws() as (aws, stubs):
        _queue_aws(bu, stubs, smoke="--skip-endpoint-smoke" not in extra)
        path = kubeconfig or write_kubeconfig(tmp_path / "kubeconfig", url, EKS_ARN)
        argv = ["--bu", "fraud", "--kubeconfig", str(path), *extra]
        code = main(parse_args(argv), aws=aws, tracking_call=_tracking, out=out)
    return code, out.getvalue()


def table(out: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(check, target) -> (status, detail), read back from the printed table."""
    rows = {}
    for line in out.splitlines()[1:]:
        if line.startswith("doctor:"):
            continue
        check, target, status, detail = re.split(r" {2,}", line, maxsplit=3)
        rows[(check, target)] = (status.strip(), detail)
    return rows


# --- the tests -------------------------------------------------------------------------------


def test_a_healthy_bu_passes_every_check(tmp_path: Path) -> None:
    bu = Bu()
    code, out = doctor(bu, tmp_path)
    rows = table(out)
    assert code == 0, out
    assert out.splitlines()[0].split() == ["check", "target", "status", "detail"]
    assert {status for status, _ in rows.values()} == {"ok"}
    assert out.splitlines()[-1] == f"doctor: all {len(rows)} checks passed"
    assert rows[("gpu capacity", "h200-mig")][1] == f"{MIG} 56 (config 56)"
    assert rows[("gpu capacity", "h100")][1] == "nvidia.com/gpu 16 (config 16)"
    assert rows[("clusterqueue", "hyperpod-ns-research-clusterqueue")][1] == (
        f"ml.p5.48xlarge nvidia.com/gpu 8, ml.p5en.48xlarge {MIG} 28"
    )
    assert rows[("fsx claim", "hyperpod-ns-scoring/fsx-claim")][1] == "Bound to fsx-scoring"
    assert rows[("mlflow", "fraud-mlflow")][1] == "Created, Active; search_experiments answered"
    smoke = rows[("endpoint smoke", "fraud-qwen3-tools-hp")][1]
    assert smoke.startswith('tool_call: get_weather {"city": "Paris"')
    assert ("addon", "amazon-sagemaker-hyperpod-inference") in rows  # a HyperPod endpoint's
    asked = {path for method, path, _ in bu.cluster.requests if method == "GET"}
    assert "/apis/kueue.x-k8s.io/v1beta1/clusterqueues" in asked
    assert "/api/v1/namespaces/hyperpod-ns-research/persistentvolumeclaims/fsx-claim" in asked
    assert ("workspace templates", "jupyter-k8s-system") not in rows  # fraud has no spaces


def test_the_bu_s_names_are_the_stage_s() -> None:
    """What the stacks call things (stacks/stage.py, config.naming, the constructs); the
    stack list is held to the synthesized stage in tests/stacks/test_stages.py."""
    assert checks.stack_names(CONFIG)[:2] == ["fraud-network", "fraud-security"]
    assert checks.instance_groups(HP) == {"system": 2, "h200-mig": 1, "h100": 2}
    assert len(checks.pinned_addons(CONFIG)) == 12
    assert set(checks.INFERENCE_ADDON_NAMES) == set(HyperPodInferenceAddons.model_fields)
    # that the construct installs exactly these: tests/unit/test_hyperpod_inference_construct.py
    from platform_constructs.hyperpod_cluster import _instance_group
    from platform_constructs.hyperpod_workloads import FSX_CLAIM

    assert checks.FSX_CLAIM == FSX_CLAIM
    from platform_constructs import hyperpod_spaces

    assert checks.SPACES_NAMESPACE == hyperpod_spaces.SYSTEM_NAMESPACE
    api_version = f"{checks.WORKSPACE_GROUP}/{checks.WORKSPACE_VERSION}"
    assert api_version == hyperpod_spaces.TEMPLATE_API_VERSION
    assert f"{hyperpod_spaces.TEMPLATE_KIND.lower()}s" == checks.WORKSPACE_TEMPLATES
    from stacks.hyperpod_stack import gpu_group_spec

    spec = _instance_group(
        gpu_group_spec(HP.gpu_groups[0]),
        "h200-mig",
        SimpleNamespace(role_arn="r"),
        "s3://b/",
        SimpleNamespace(key_arn="k"),
    )
    assert spec["kubernetesConfig"]["labels"][checks.GROUP_LABEL] == "h200-mig"


def _set(attribute: str, key: str, value: Any) -> Callable[[Bu], None]:
    def apply(bu: Bu) -> None:
        getattr(bu, attribute)[key] = value

    return apply


def _tip_off(bu: Bu) -> None:
    bu.tip = "DISABLED"


def _not_ready(bu: Bu) -> None:
    bu.node("hyperpod-i-h100-1")["status"]["conditions"] = [{"type": "Ready", "status": "False"}]


def _fewer_slices(bu: Bu) -> None:
    node = bu.node("hyperpod-i-mig-0")
    node["status"]["allocatable"][MIG] = "48"  # one GPU's MIG layout did not apply
    node["metadata"]["labels"]["nvidia.com/mig.config.state"] = "failed"


def _lower_quota(bu: Bu) -> None:
    bu.cluster.cluster_queues[0] = _queue("scoring", gpus=4)


def _no_queue(bu: Bu) -> None:
    del bu.cluster.cluster_queues[1]


def _pending(bu: Bu) -> None:
    bu.cluster.claims[("hyperpod-ns-scoring", "fsx-claim")] = _claim("scoring", "Pending")


def _unassigned(bu: Bu) -> None:
    bu.assigned.remove(STUDIO.users[1].user_id)


BROKEN = [
    (
        "stack-rolled-back",
        _set("stacks", "fraud-training", "UPDATE_ROLLBACK_COMPLETE"),
        ("stack", "fraud-training"),
        "UPDATE_ROLLBACK_COMPLETE",
    ),
    (
        "group-below-target",
        _set("groups", "h100", (1, 2)),
        ("instance group", "h100"),
        "1/2 running (config 2)",
    ),
    ("node-not-ready", _not_ready, ("nodes", "h100"), "1/2 Ready; NotReady: hyperpod-i-h100-1"),
    (
        "mig-slices-short",
        _fewer_slices,
        ("gpu capacity", "h200-mig"),
        f"{MIG} 48 (config 56); nvidia.com/mig.config.state hyperpod-i-mig-0: failed",
    ),
    (
        "addon-wrong-version",
        _set("addons", "vpc-cni", ("ACTIVE", "v1.19.0-eksbuild.1")),
        ("addon", "vpc-cni"),
        "ACTIVE v1.19.0-eksbuild.1 (pinned v1.20.4-eksbuild.2)",
    ),
    (
        "addon-degraded",
        _set("addons", "cert-manager", ("DEGRADED", HP.addons.cert_manager)),
        ("addon", "cert-manager"),
        f"DEGRADED {HP.addons.cert_manager}: InsufficientNumberOfReplicas: 0/2",
    ),
    (
        "queue-missing",
        _no_queue,
        ("clusterqueue", "hyperpod-ns-research-clusterqueue"),
        "missing: task governance made no queue for the team",
    ),
    (
        "queue-quota-differs",
        _lower_quota,
        ("clusterqueue", "hyperpod-ns-scoring-clusterqueue"),
        "ml.p5.48xlarge nvidia.com/gpu 4 (config 8)",
    ),
    ("pvc-pending", _pending, ("fsx claim", "hyperpod-ns-scoring/fsx-claim"), "Pending"),
    (
        "tip-disabled",
        _tip_off,
        ("studio tip", "fraud-studio"),
        "DISABLED (config ENABLED)",
    ),
    (
        "user-unassigned",
        _unassigned,
        ("sso assignment", "bruno.silva@example.com"),
        "USER 9067a1b2c3-6a7b8c9d-0e1f-4a2b-9c3d-4e5f6a7b8c9d: not assigned to the domain's app",
    ),
    (
        "endpoint-not-in-service",
        _set("endpoints", "fraud-qwen3-tools", "Updating"),
        ("endpoint", "fraud-qwen3-tools"),
        "Updating",
    ),
]


@pytest.mark.parametrize(
    ("break_it", "key", "detail"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_each_breakage_fails_its_row_and_the_run(
    tmp_path: Path, break_it: Callable[[Bu], None], key: tuple[str, str], detail: str
) -> None:
    bu = Bu()
    break_it(bu)
    code, out = doctor(bu, tmp_path)
    assert code == 1
    assert table(out)[key] == ("FAIL", detail)
    assert out.splitlines()[-1] == f"doctor: 1 check(s) failed: {key[0]} {key[1]}"


def test_an_endpoint_that_is_not_in_service_is_not_smoke_tested(tmp_path: Path) -> None:
    bu = Bu()
    bu.endpoints["fraud-qwen3-tools"] = "Updating"
    _, out = doctor(bu, tmp_path)
    assert table(out)[("endpoint smoke", "fraud-qwen3-tools")] == ("skip", "endpoint is Updating")


def test_skip_endpoint_smoke_sends_no_request(tmp_path: Path) -> None:
    code, out = doctor(Bu(), tmp_path, "--skip-endpoint-smoke")
    rows = table(out)
    assert code == 0
    assert rows[("endpoint", "fraud-qwen3-tools")] == ("ok", "InService")
    assert rows[("endpoint smoke", "fraud-qwen3-tools")] == ("skip", "--skip-endpoint-smoke")
    assert out.splitlines()[-1].endswith("checks passed (2 skipped)")


def test_a_wrong_answer_fails_the_smoke_row(tmp_path: Path) -> None:
    bu = Bu(answer="It is sunny in Paris.")
    code, out = doctor(bu, tmp_path)
    assert code == 1
    status, detail = table(out)[("endpoint smoke", "fraud-qwen3-tools")]
    assert (status, detail) == ("FAIL", "no reasoning in the answer; no valid get_weather call")


def test_no_kubeconfig_is_a_fail_row_not_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    code, out = doctor(Bu(), tmp_path, kubeconfig=missing)
    rows = table(out)
    assert code == 1
    assert "Traceback" not in out
    status, detail = rows[("kubeconfig", str(missing))]
    assert status == "FAIL"
    assert detail.startswith("no usable kubeconfig")
    assert "aws eks update-kubeconfig --name fraud-eks --region us-east-1" in detail
    assert rows[("cluster checks", "fraud-eks")][0] == "skip"
    assert out.splitlines()[-1] == f"doctor: 1 check(s) failed: kubeconfig {missing}"


def test_an_unreachable_cluster_is_one_row(tmp_path: Path) -> None:
    with fake_kube_server(FakeCluster()) as url:
        closed = url  # nothing listens there once the block ends
    rows = checks.cluster_rows(
        CONFIG, kubeconfig=str(write_kubeconfig(tmp_path / "kc", closed, EKS_ARN)), context=None
    )
    assert [(r.check, r.status) for r in rows] == [
        ("cluster api", "FAIL"),
        ("cluster checks", "skip"),
    ]
    assert "cannot reach the cluster API" in rows[0].detail


def test_no_credentials_skip_the_aws_checks_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    out = io.StringIO()
    args = parse_args(["--bu", "fraud", "--kubeconfig", str(tmp_path / "none")])
    code = main(args, out=out)
    rows = table(out.getvalue())
    assert code == 1
    assert "Traceback" not in out.getvalue()
    status, detail = rows[("aws identity", ACCOUNT)]
    assert status == "FAIL"
    assert detail.startswith("Unable to locate credentials: set AWS_PROFILE")
    assert rows[("aws checks", "fraud")][0] == "skip"


def test_another_account_s_credentials_check_nothing_else() -> None:
    with stubbed_aws() as (aws, stubs):
        _identity(stubs, account="222222222222")
        rows = run_checks(CONFIG, aws=aws, kubeconfig="/nonexistent")
    assert [(r.check, r.status) for r in rows] == [
        ("aws identity", "FAIL"),
        ("aws checks", "skip"),
        ("kubeconfig", "FAIL"),
        ("cluster checks", "skip"),
    ]
    assert rows[0].detail.endswith(f"not BU account {ACCOUNT}")


def test_access_denied_and_not_found_are_rows_of_their_own() -> None:
    with stubbed_aws() as (aws, stubs):
        stubs["sagemaker"].add_client_error(
            "describe_cluster",
            service_error_code="AccessDeniedException",
            service_message="not authorized to perform: sagemaker:DescribeCluster",
            http_status_code=400,
        )
        cluster = checks.hyperpod_rows(CONFIG, aws)
        for name in checks.stack_names(CONFIG):
            if name != "fraud-studio":
                _stack(stubs, name, "UPDATE_COMPLETE")
                continue
            stubs["cloudformation"].add_client_error(
                "describe_stacks",
                service_error_code="ValidationError",
                service_message="Stack with id fraud-studio does not exist",
            )
        stacks = checks.stack_rows(CONFIG, aws)
    assert cluster == [
        checks.Row(
            "hyperpod cluster",
            "fraud-hyperpod",
            "FAIL",
            "DescribeCluster: AccessDeniedException: not authorized to perform: "
            "sagemaker:DescribeCluster",
        )
    ]
    failed = [(r.target, r.detail) for r in stacks if r.status == "FAIL"]
    assert failed == [
        (
            "fraud-studio",
            "DescribeStacks: ValidationError: Stack with id fraud-studio does not exist",
        )
    ]
    assert len(stacks) == len(checks.stack_names(CONFIG))  # every other stack still a row


def test_mlflow_is_described_only_without_the_client_and_fails_on_a_bad_call() -> None:
    def refused(arn: str) -> str:
        raise checks.CheckError("search_experiments failed: MlflowException: 403")

    with stubbed_aws() as (aws, stubs):
        _mlflow(stubs)
        described = checks.mlflow_rows(CONFIG, aws, None)
        _mlflow(stubs)
        failed = checks.mlflow_rows(CONFIG, aws, refused)
        app_arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:mlflow-app/app-abc123"
        stubs["ssm"].add_response(
            "get_parameter",
            {"Parameter": {"Name": "/fraud/mlflow/tracking-arn", "Value": app_arn}},
            {"Name": "/fraud/mlflow/tracking-arn"},
        )
        stubs["sagemaker"].add_response(
            "describe_mlflow_app", {"Arn": app_arn, "Status": "CreateFailed"}, {"Arn": app_arn}
        )
        app = CONFIG.model_copy(update={"mlflow": Mlflow(kind="app")})
        app_rows = checks.mlflow_rows(app, aws, _tracking)
    assert described[0].status == "ok"
    assert (
        "describe only: no tracking call without mlflow + sagemaker-mlflow" in described[0].detail
    )
    assert (failed[0].status, failed[0].detail) == (
        "FAIL",
        "Created, Active; search_experiments failed: MlflowException: 403",
    )
    assert app_rows == [checks.Row("mlflow", "fraud-mlflow", "FAIL", "CreateFailed")]


def test_an_unknown_bu_is_a_usage_error() -> None:
    out = io.StringIO()
    assert main(parse_args(["--bu", "nosuchbu"]), out=out) == 2
    assert "cannot load BU 'nosuchbu'" in out.getvalue()


def test_the_printed_table_lines_up() -> None:
    rows = [
        checks.Row("stack", "fraud-network", "ok", "CREATE_COMPLETE"),
        checks.Row("aws identity", "111111111111", "FAIL", "x"),
    ]
    from tools.doctor import render, verdict

    assert render(rows).splitlines() == [
        "check         target         status  detail",
        "stack         fraud-network  ok      CREATE_COMPLETE",
        "aws identity  111111111111   FAIL    x",
    ]
    assert verdict(rows) == (1, "doctor: 1 check(s) failed: aws identity 111111111111")


# --- SageMaker Spaces (marketing, the example BU with a hyperpod.spaces section) ---------------

MARKETING = load_valid([CONFIG_DIR / "marketing.yaml"])[0]
assert MARKETING.hyperpod is not None
assert MARKETING.hyperpod.spaces is not None
SPACES = MARKETING.hyperpod.spaces
MARKETING_EKS = MARKETING.naming.resource("eks")
SPACES_NS = "jupyter-k8s-system"


def _spaces_rows(tmp_path: Path, templates: list[str]) -> dict[tuple[str, str], tuple[str, str]]:
    """marketing's cluster rows against a fake cluster holding ``templates``."""
    cluster = FakeCluster(
        workspace_templates={
            SPACES_NS: [
                {"kind": "WorkspaceTemplate", "metadata": {"name": n, "namespace": SPACES_NS}}
                for n in templates
            ]
        }
    )
    arn = f"arn:aws:eks:{MARKETING.region}:{MARKETING.account}:cluster/{MARKETING_EKS}"
    with fake_kube_server(cluster) as url:
        path = write_kubeconfig(tmp_path / "kubeconfig", url, arn)
        rows = checks.cluster_rows(MARKETING, kubeconfig=str(path), context=None)
    asked = {path for method, path, _ in cluster.requests if method == "GET"}
    assert (
        f"/apis/workspace.jupyter.org/v1alpha1/namespaces/{SPACES_NS}/workspacetemplates" in asked
    )
    return {(r.check, r.target): (r.status, r.detail) for r in rows}


def test_every_published_template_present_passes_the_spaces_row(tmp_path: Path) -> None:
    rows = _spaces_rows(tmp_path, [*SPACES.template_names(), "someone-elses"])
    assert rows[("workspace templates", SPACES_NS)] == ("ok", "4 present")
    # This fake cluster has no node: each GPU group's row fails instead of the run crashing.
    assert rows[("gpu capacity", "a100-mig")] == ("FAIL", "nvidia.com/mig-3g.20gb 0 (config 16)")


def test_a_missing_template_fails_the_spaces_row(tmp_path: Path) -> None:
    kept = [n for n in SPACES.template_names() if n != "insights-code-editor"]
    rows = _spaces_rows(tmp_path, kept)
    assert rows[("workspace templates", SPACES_NS)] == ("FAIL", "missing insights-code-editor")


@pytest.mark.parametrize(
    ("status", "version", "good"),
    [
        ("ACTIVE", SPACES.addons.sagemaker_spaces, True),
        ("ACTIVE", "v0.9.0-eksbuild.1", False),  # an older add-on than the pin
        ("CREATING", SPACES.addons.sagemaker_spaces, False),
    ],
)
def test_the_spaces_addons_are_checked_at_their_pins(status: str, version: str, good: bool) -> None:
    pins = checks.pinned_addons(MARKETING)
    assert pins["amazon-sagemaker-spaces"] == SPACES.addons.sagemaker_spaces
    assert pins["aws-ebs-csi-driver"] == SPACES.addons.aws_ebs_csi_driver
    answers = {name: ("ACTIVE", pin) for name, pin in pins.items()}
    answers["amazon-sagemaker-spaces"] = (status, version)
    with stubbed_aws() as (aws, stubs):
        for name, (state, have) in answers.items():
            addon = {"addonName": name, "clusterName": MARKETING_EKS, "status": state}
            stubs["eks"].add_response(
                "describe_addon",
                {"addon": {**addon, "addonVersion": have}},
                {"clusterName": MARKETING_EKS, "addonName": name},
            )
        rows = {r.target: r for r in checks.addon_rows(MARKETING, aws)}
    spaces = rows["amazon-sagemaker-spaces"]
    assert spaces.status == ("ok" if good else "FAIL"), spaces
    assert spaces.detail.startswith(f"{status} {version}")
    assert rows["aws-ebs-csi-driver"].status == "ok"
