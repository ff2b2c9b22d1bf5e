"""Chart staging: the commands it plans for a BU, the image check on a render, the mirrors, the
``--verify`` report and the one-line errors, with a fake runner (no git, AWS or registry); and
one render with the kubectl layer's real helm."""

import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.loader import CONFIG_DIR, load_valid, validate_raw
from scripts import stage_hyperpod_chart as stage
from scripts.chart_images import documents, rendered_images
from scripts.kubectl_layer import LayerError, layer_helm
from scripts.stage_hyperpod_chart import (
    CommandError,
    Plan,
    build_commands,
    check_digest,
    main,
    mirror_commands,
    parse_args,
    plan_for,
    planned_commands,
    render_command,
    render_problems,
    run_command,
)

REGISTRY = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
HMA = "767398015722.dkr.ecr.us-east-1.amazonaws.com/hyperpod-health-monitoring-agent:1.0"
GPU_MIRROR = "463470961310.dkr.ecr.us-east-1.amazonaws.com"
EKS = "602401143452.dkr.ecr.us-east-1.amazonaws.com"
HELM = Path("/opt/helm/helm")


@pytest.fixture(scope="module")
def fraud() -> Plan:
    (config,) = load_valid([CONFIG_DIR / "fraud.yaml"])
    return plan_for(config)


@pytest.fixture(scope="module")
def whole_gpus() -> Plan:
    """Fraud with no MIG group (every example config has one): built through the schema."""
    raw = yaml.safe_load((CONFIG_DIR / "fraud.yaml").read_text(encoding="utf-8"))
    hp = raw["hyperpod"]
    for group in hp["gpu_groups"]:
        group.pop("mig", None)
    hp["quotas"] = [quota for quota in hp["quotas"] if "mig" not in quota]
    for item in raw.get("endpoints", {}).get("items", []):
        item.pop("mig_profile", None)
    config, errors = validate_raw("fraud-whole-gpus", raw)
    assert config is not None, errors
    return plan_for(config)


def render(
    *,
    operator: str = f"{REGISTRY}/fraud/hyperpod-mirror/training-operator:v1",
    init: str = f"{EKS}/eks/pause:3.10",
    agent: str = HMA,
    mig_manager_repository: str = f"{GPU_MIRROR}/mirror-cloud-native",
    cluster_policy: bool = True,
) -> str:
    """A render shaped like ``helm template`` output: comments, a Deployment with an init
    container, a DaemonSet, and a ClusterPolicy whose disabled and sandbox-only components
    keep NVIDIA's public defaults (the operator never deploys them)."""
    policy = f"""---
# Source: hyperpod-helm-chart/charts/gpu-operator/charts/gpu-operator/templates/clusterpolicy.yaml
apiVersion: nvidia.com/v1
kind: ClusterPolicy
metadata:
  name: cluster-policy
spec:
  operator: {{initContainer: {{}}}}
  validator: {{repository: {GPU_MIRROR}/mirror-cloud-native, image: gpu-operator-validator,
               version: v26.3.1, plugin: {{env: []}}}}
  migManager:
    enabled: true
    repository: {mig_manager_repository}
    image: k8s-mig-manager
    version: v0.14.0
    config: {{name: platform-mig-config}}
  driver:
    enabled: false
    repository: nvcr.io/nvidia
    image: driver
    version: 580.126.20
    manager: {{repository: nvcr.io/nvidia/cloud-native, image: k8s-driver-manager}}
  nodeStatusExporter: {{repository: nvcr.io/nvidia, image: gpu-operator, version: v26.3.1}}
  sandboxWorkloads: {{enabled: false}}
  ccManager: {{enabled: true, repository: nvcr.io/nvidia/cloud-native, image: k8s-cc-manager,
              version: v0.4.0}}
"""
    return f"""---
# Source: hyperpod-helm-chart/charts/training-operators/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: dependencies-training-operators
  namespace: kubeflow
spec:
  template:
    spec:
      initContainers:
        - name: wait
          image: {init}
      containers:
        - name: training-operator
          image: "{operator}"
---
# Source: hyperpod-helm-chart/charts/health-monitoring-agent/templates/agent.yaml
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: health-monitoring-agent
  namespace: aws-hyperpod
spec:
  template:
    spec:
      containers:
        - {{name: health-monitoring-agent, image: {agent}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: mpijobs.kubeflow.org}}
spec:
  versions:
    - schema: {{openAPIV3Schema: {{properties: {{containers: {{type: array}}}}}}}}
{policy if cluster_policy else ""}"""


class FakeTools:
    """The runner for tests: canned outputs by tool, and an ECR that remembers what was copied
    or pushed (``describe-images`` answers ImageNotFoundException until then)."""

    def __init__(
        self,
        *,
        manifests: str = "",
        ecr: dict[str, str] | None = None,
        account: str = "111111111111",
        fail: dict[str, str] | None = None,
        chart_digest: str = "sha256:" + "c" * 64,
    ) -> None:
        self.manifests = manifests
        self.ecr = dict(ecr or {})  # "repository:tag" -> digest
        self.account = account
        self.fail = fail or {}  # a command's start -> the stderr it fails with
        self.chart_digest = chart_digest
        self.calls: list[list[str]] = []

    def __call__(self, command: Sequence[str], *, stdin: str | None = None) -> str:
        cmd = [Path(command[0]).name, *command[1:]]
        self.calls.append(cmd)
        line = " ".join(cmd)
        for start, stderr in self.fail.items():
            if line.startswith(start):
                raise CommandError(command, 254, stderr)
        answer: Callable[[list[str]], str] = {
            "get-caller-identity": lambda _: self.account + "\n",
            "describe-images": self._describe,
            "get-login-password": lambda _: "token",
            "inspect": lambda c: _digest(c[-1].removeprefix("docker://")) + "\n",
            "copy": self._copy,
            "template": lambda _: self.manifests,
            "push": self._push,
        }.get(cmd[2] if cmd[0] == "aws" else cmd[1], lambda _: "")
        return answer(cmd)

    def ran(self, *words: str) -> list[list[str]]:
        return [c for c in self.calls if all(w in c for w in words)]

    def _describe(self, cmd: list[str]) -> str:
        key = f"{_arg(cmd, '--repository-name')}:{_arg(cmd, '--image-ids').split('=')[1]}"
        if key not in self.ecr:
            raise CommandError(cmd, 254, "An error occurred (ImageNotFoundException) ...")
        return self.ecr[key] + "\n"

    def _copy(self, cmd: list[str]) -> str:
        source, target = (c.removeprefix("docker://") for c in cmd[-2:])
        self.ecr[target.split("/", 1)[1]] = _digest(source)  # the registry host dropped
        return ""

    def _push(self, cmd: list[str]) -> str:
        """``helm push <dir>/<chart>-<version>.tgz oci://<registry>/<namespace>``"""
        chart, version = Path(cmd[2]).name.removesuffix(".tgz").rsplit("-", 1)
        self.ecr[f"{cmd[3].split('/', 3)[3]}/{chart}:{version}"] = self.chart_digest
        return f"Pushed: x\nDigest: {self.chart_digest}\n"


def _arg(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _digest(reference: str) -> str:
    return "sha256:" + hashlib.sha256(reference.encode()).hexdigest()


@pytest.fixture
def tools_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage.shutil, "which", lambda tool: f"/usr/bin/{tool}")


# --- the plan --------------------------------------------------------------------------------


def test_plan_reads_the_bu_config(fraud: Plan, whole_gpus: Plan) -> None:
    assert (fraud.registry, fraud.repository, fraud.namespace) == (
        REGISTRY,
        "fraud/hyperpod-helm-chart",
        "fraud",
    )
    assert fraud.commit == "a00b22d17ea928a6e39a43bd2efdafe01b1005ea"
    assert fraud.mig
    assert fraud.hyperpod_inference
    assert not whole_gpus.mig
    assert fraud.allowed_prefixes[0] == f"{REGISTRY}/fraud/"
    assert f"{GPU_MIRROR}/" in fraud.allowed_prefixes
    assert f"{GPU_MIRROR}/" not in whole_gpus.allowed_prefixes


def test_build_fetches_the_gpu_operator_subchart_before_the_top_level(fraud: Plan) -> None:
    work = Path("/w")
    commands = build_commands(fraud, work, HELM)
    src = "/w/sagemaker-hyperpod-cli"
    assert commands == [
        ["git", "clone", "--filter=blob:none", stage.SOURCE, src],
        ["git", "-C", src, "checkout", "--detach", fraud.commit],
        [str(HELM), "dependency", "update", f"{src}/{stage.CHART_DIR}/charts/gpu-operator"],
        [str(HELM), "dependency", "update", f"{src}/{stage.CHART_DIR}"],
        [str(HELM), "package", f"{src}/{stage.CHART_DIR}", "--version", "0.1.0", "-d", "/w"],
    ]


def test_planned_sequence_renders_before_anything_is_pushed(fraud: Plan) -> None:
    lines = planned_commands(fraud, Path("/w"), HELM, verify=False)
    first = {
        step: next(i for i, line in enumerate(lines) if step in line)
        for step in ("sts", "git clone", "package", "template", "login", "skopeo copy", "push")
    }
    assert list(first.values()) == sorted(first.values())
    template = next(line for line in lines if " template " in line)
    assert "dependencies /w/hyperpod-helm-chart-0.1.0.tgz --namespace kube-system" in template
    assert "--values /w/values.json" in template
    logins = [line for line in lines if " login " in line]
    assert len(logins) == 2
    assert all(
        line.startswith("aws ecr get-login-password --region us-east-1 | ") for line in logins
    )


def test_mirrors_follow_the_bu_groups(fraud: Plan, whole_gpus: Plan) -> None:
    assert [i.name for i in fraud.images] == [
        "training-operator",
        "mpi-operator",
        "node-feature-discovery",
    ]
    assert [i.name for i in whole_gpus.images] == [
        "training-operator",
        "mpi-operator",
        "k8s-device-plugin",
    ]
    nfd = mirror_commands(fraud, fraud.images[2])
    create, inspect, _, copy, _ = nfd
    assert (
        create[create.index("--repository-name") + 1]
        == "fraud/hyperpod-mirror/node-feature-discovery"
    )
    assert create[create.index("--image-tag-mutability") + 1] == "IMMUTABLE"
    assert "encryptionType=KMS" in create
    assert "scanOnPush=true" in create
    assert inspect == ["skopeo", "inspect", "--format", "{{.Digest}}",
                       "docker://registry.k8s.io/nfd/node-feature-discovery:v0.18.3"]  # fmt: skip
    assert copy == [
        "skopeo", "copy", "--all",
        "docker://registry.k8s.io/nfd/node-feature-discovery:v0.18.3",
        f"docker://{REGISTRY}/fraud/hyperpod-mirror/node-feature-discovery:v0.18.3",
    ]  # fmt: skip
    plugin = mirror_commands(whole_gpus, whole_gpus.images[2])[3]
    assert plugin[-2:] == [
        "docker://nvcr.io/nvidia/k8s-device-plugin:v0.16.1",
        f"docker://{REGISTRY}/fraud/hyperpod-mirror/k8s-device-plugin:v0.16.1",
    ]


# --- the render check ------------------------------------------------------------------------


def test_render_with_mirrors_and_aws_registries_passes(fraud: Plan) -> None:
    manifests = render()
    found = {use.component: use.image for use in rendered_images(documents(manifests))}
    assert found == {
        "Deployment/kubeflow/dependencies-training-operators initContainer wait": (
            f"{EKS}/eks/pause:3.10"
        ),
        "Deployment/kubeflow/dependencies-training-operators container training-operator": (
            f"{REGISTRY}/fraud/hyperpod-mirror/training-operator:v1"
        ),
        "DaemonSet/aws-hyperpod/health-monitoring-agent container health-monitoring-agent": HMA,
        "ClusterPolicy/cluster-policy validator": (
            f"{GPU_MIRROR}/mirror-cloud-native/gpu-operator-validator:v26.3.1"
        ),
        "ClusterPolicy/cluster-policy migManager": (
            f"{GPU_MIRROR}/mirror-cloud-native/k8s-mig-manager:v0.14.0"
        ),
    }
    assert render_problems(fraud, manifests) == []


def test_public_images_are_refused_by_component(fraud: Plan, whole_gpus: Plan) -> None:
    manifests = render(
        operator="docker.io/kubeflow/training-operator:v1",
        init="busybox:1.36",
        agent=HMA.replace("us-east-1", "us-west-2"),  # another region: no VPC endpoint there
        mig_manager_repository="nvcr.io/nvidia/cloud-native",
    )
    assert render_problems(fraud, manifests) == [
        "Deployment/kubeflow/dependencies-training-operators initContainer wait: busybox:1.36",
        "Deployment/kubeflow/dependencies-training-operators container training-operator: "
        "docker.io/kubeflow/training-operator:v1",
        "DaemonSet/aws-hyperpod/health-monitoring-agent container health-monitoring-agent: "
        + HMA.replace("us-east-1", "us-west-2"),
        "ClusterPolicy/cluster-policy migManager: "
        "nvcr.io/nvidia/cloud-native/k8s-mig-manager:v0.14.0",
    ]
    # Without MIG, HyperPod's GPU-operator mirror is not a registry the nodes may pull from.
    assert any(p.startswith("ClusterPolicy/cluster-policy validator") for p in
               render_problems(whole_gpus, render()))  # fmt: skip


def test_mig_needs_exactly_one_cluster_policy(fraud: Plan, whole_gpus: Plan) -> None:
    (problem,) = render_problems(fraud, render(cluster_policy=False))
    assert "0 ClusterPolicy objects, MIG needs exactly 1" in problem
    assert render_problems(whole_gpus, render(cluster_policy=False)) == []
    (problem,) = render_problems(fraud, render() + render())
    assert "2 ClusterPolicy objects" in problem


def test_digest_is_compared_with_the_pin(fraud: Plan) -> None:
    assert check_digest(fraud, fraud.digest) is None
    problem = check_digest(fraud, "sha256:" + "1" * 64)
    assert problem is not None
    assert "set hyperpod.dependencies_chart.digest to sha256:111" in problem


# --- a whole run against the fake ------------------------------------------------------------


@pytest.mark.usefixtures("tools_on_path")
def test_stage_renders_mirrors_and_pushes(fraud: Plan, capsys: pytest.CaptureFixture[str]) -> None:
    tools = FakeTools(manifests=render(), chart_digest=fraud.digest)
    assert main(parse_args(["--bu", "fraud"]), run=tools, helm=HELM) == 0
    names = [" ".join(c[:3]) for c in tools.calls]
    updates = [c[-1] for c in tools.ran("dependency", "update")]
    assert len(updates) == 2
    assert updates[0].endswith("charts/gpu-operator")
    assert names.index("helm template dependencies") < names.index("skopeo copy --all")
    assert len(tools.ran("copy")) == 3
    assert len(tools.ran("push")) == 1
    assert tools.ran("skopeo", "login")
    assert tools.ran("registry", "login")
    out = capsys.readouterr().out
    nfd = f"{REGISTRY}/fraud/hyperpod-mirror/node-feature-discovery:v0.18.3"
    assert nfd in out
    assert _digest("registry.k8s.io/nfd/node-feature-discovery:v0.18.3") in out
    assert f"ok: fraud/hyperpod-helm-chart:0.1.0 is {fraud.digest}" in out
    # Again: every tag is there already (immutable), nothing is copied or pushed twice.
    again = FakeTools(manifests=render(), ecr=tools.ecr)
    assert main(parse_args(["--bu", "fraud"]), run=again, helm=HELM) == 0
    assert not again.ran("copy")
    assert not again.ran("push")
    assert "already there" in capsys.readouterr().out


@pytest.mark.usefixtures("tools_on_path")
def test_stage_stops_before_any_push_when_the_render_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    tools = FakeTools(manifests=render(operator="docker.io/kubeflow/training-operator:v1"))
    assert main(parse_args(["--bu", "fraud"]), run=tools, helm=HELM) == 1
    assert not tools.ran("login")
    assert not tools.ran("copy")
    assert not tools.ran("push")
    err = capsys.readouterr().err
    assert "container training-operator: docker.io/kubeflow/training-operator:v1" in err
    assert f"{REGISTRY}/fraud/" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("tools_on_path")
def test_a_new_digest_is_reported_for_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    tools = FakeTools(manifests=render())
    assert main(parse_args(["--bu", "fraud"]), run=tools, helm=HELM) == 1
    assert f"set hyperpod.dependencies_chart.digest to {tools.chart_digest}" in (
        capsys.readouterr().err
    )


@pytest.mark.usefixtures("tools_on_path")
def test_verify_lists_what_is_missing(fraud: Plan, capsys: pytest.CaptureFixture[str]) -> None:
    chart = {"fraud/hyperpod-helm-chart:0.1.0": fraud.digest}
    partial = FakeTools(ecr={**chart, "fraud/hyperpod-mirror/mpi-operator:0.5": "sha256:1"})
    assert main(parse_args(["--bu", "fraud", "--verify"]), run=partial) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[:2] == [
        f"missing: {REGISTRY}/fraud/hyperpod-mirror/training-operator:v1-855e096 "
        "(mirror of docker.io/kubeflow/training-operator:v1-855e096)",
        f"missing: {REGISTRY}/fraud/hyperpod-mirror/node-feature-discovery:v0.18.3 "
        "(mirror of registry.k8s.io/nfd/node-feature-discovery:v0.18.3)",
    ]
    everything = {f"{i.mirror_repository('fraud')}:{i.tag}": "sha256:1" for i in fraud.images}
    complete = FakeTools(ecr={**chart, **everything})
    assert main(parse_args(["--bu", "fraud", "--verify"]), run=complete) == 0
    assert {c[1] for c in complete.calls} == {"sts", "ecr"}
    assert {c[2] for c in complete.calls if c[1] == "ecr"} == {"describe-images"}
    assert main(parse_args(["--bu", "fraud", "--verify"]), run=FakeTools(ecr=everything)) == 1
    assert "missing: chart fraud/hyperpod-helm-chart:0.1.0" in capsys.readouterr().err


def test_dry_run_prints_commands_and_values(capsys: pytest.CaptureFixture[str]) -> None:
    def no_calls(command: Sequence[str], *, stdin: str | None = None) -> str:
        raise AssertionError(f"ran {command}")

    assert main(parse_args(["--bu", "fraud", "--dry-run"]), run=no_calls) == 0
    out = capsys.readouterr().out
    for step in ("+ git clone", "dependency update", "helm template", "skopeo copy --all"):
        assert step in out
    values = json.loads(out[out.index("values.json:\n") + len("values.json:\n") :])
    assert values["gpu-operator"]["enabled"] is True


# --- errors a user hits: one line, no traceback ----------------------------------------------


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], **kwargs: Any) -> str:
    assert main(parse_args(argv), **kwargs) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("stage-hyperpod-chart: ")
    return err


def test_unknown_bu(capsys: pytest.CaptureFixture[str]) -> None:
    err = _one_line_error(capsys, ["--bu", "nope", "--dry-run"])
    assert "nope.yaml: <file>: cannot read" in err
    assert "known BUs: credit, fraud, marketing" in err


def test_bu_without_hyperpod(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    valid_bu: dict[str, Any],
) -> None:
    (tmp_path / "payments.yaml").write_text(yaml.safe_dump(valid_bu), encoding="utf-8")
    monkeypatch.setattr(stage, "CONFIG_DIR", tmp_path)
    err = _one_line_error(capsys, ["--bu", "payments"])
    assert "BU 'payments' has no hyperpod section" in err


def test_missing_tools_say_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stage.shutil, "which", lambda tool: None if tool == "skopeo" else tool)
    err = _one_line_error(capsys, ["--bu", "fraud"], run=FakeTools(), helm=HELM)
    assert "skopeo: install skopeo (https://github.com/containers/skopeo" in err


@pytest.mark.usefixtures("tools_on_path")
def test_failing_command_shows_the_tool_error(capsys: pytest.CaptureFixture[str]) -> None:
    git = "fatal: unable to access 'https://github.com/aws/sagemaker-hyperpod-cli.git/'"
    tools = FakeTools(fail={"git clone": f"Cloning into 'x'...\n{git}\n"})
    err = _one_line_error(capsys, ["--bu", "fraud"], run=tools, helm=HELM)
    assert "`git clone --filter=blob:none https://github.com" in err
    assert f"failed (exit 254): Cloning into 'x'... | {git}" in err


@pytest.mark.usefixtures("tools_on_path")
def test_no_credentials_or_another_account(capsys: pytest.CaptureFixture[str]) -> None:
    message = (
        'Unable to locate credentials. You can configure credentials by running "aws configure".'
    )
    err = _one_line_error(
        capsys, ["--bu", "fraud", "--verify"], run=FakeTools(fail={"aws sts": message})
    )
    assert "no usable AWS credentials" in err
    assert message in err
    err = _one_line_error(capsys, ["--bu", "fraud"], run=FakeTools(account="999999999999"),
                          helm=HELM)  # fmt: skip
    assert "credentials are for account 999999999999" in err
    assert "111111111111" in err


def test_real_runner_raises_with_stderr() -> None:
    with pytest.raises(CommandError, match=r"failed \(exit 3\): boom"):
        run_command([sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"])
    with pytest.raises(CommandError, match="command not found"):
        run_command(["no-such-tool-for-staging"])
    assert run_command([sys.executable, "-c", "print(input())"], stdin="pw") == "pw\n"


def test_layer_helm_refuses_other_platforms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("platform.system", lambda: "Darwin")
    with pytest.raises(LayerError, match="linux/amd64"):
        layer_helm()


# --- the real helm of the kubectl layer ------------------------------------------------------


def test_layer_helm_packages_and_renders_a_chart(fraud: Plan, tmp_path: Path) -> None:
    """The staging's own ``helm template`` command, with the deploy's Helm, on a tiny chart."""
    try:
        helm = layer_helm()
    except LayerError as err:
        pytest.skip(f"no kubectl layer helm: {err}")
    version = run_command([str(helm), "version", "--short"])
    assert version.startswith("v4."), version
    chart = tmp_path / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.0.1\n")
    (chart / "values.yaml").write_text("image: {repository: docker.io/library/nginx, tag: '1'}\n")
    (chart / "templates" / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: {{ .Release.Name }}}\n"
        "spec:\n  template:\n    spec:\n      containers:\n        - name: app\n"
        '          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"\n'
    )
    run_command([str(helm), "package", str(chart), "--version", "0.2.0", "-d", str(tmp_path)])
    values = tmp_path / "values.json"
    values.write_text(json.dumps({"image": {"repository": f"{REGISTRY}/fraud/app"}}))
    manifests = run_command(render_command(fraud, tmp_path / "tiny-0.2.0.tgz", values, helm))
    assert [u.image for u in rendered_images(documents(manifests))] == [f"{REGISTRY}/fraud/app:1"]


def test_a_bu_with_spaces_mirrors_the_spaces_image_too() -> None:
    """Spaces templates run SageMaker Distribution from the BU's mirror (its public ECR source
    is out of a closed BU's reach); staging copies it beside the chart's images."""
    from config.loader import CONFIG_DIR, load_valid

    (config,) = load_valid([CONFIG_DIR / "marketing.yaml"])
    assert config.hyperpod is not None
    assert config.hyperpod.spaces is not None
    plan = plan_for(config)
    (spaces,) = [i for i in plan.images if i.name == "sagemaker-distribution"]
    assert spaces.source == "public.ecr.aws/sagemaker/sagemaker-distribution"
    assert spaces.tag == config.hyperpod.spaces.image_tag
    assert plan.mirror(spaces).endswith("/marketing/hyperpod-mirror/sagemaker-distribution")
