"""The ``hyperpod`` section: defaults, each kind of bad input (file: field.path: reason), and the
capacity arithmetic that proves the teams' quotas can be scheduled."""

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cfnlint
import pytest
from harness.bu_configs import HYPERPOD, add_hyperpod
from harness.config_errors import assert_case_rejected, mistake

from config.__main__ import main as config_cli
from config.__main__ import parse_args as config_args
from config.hyperpod import ADDON_NAMES, HyperPod, Quota, quota_problems
from config.loader import load_all
from config.regions import (
    AVAILABILITY_ZONES,
    HYPERPOD_REGIONS,
    HYPERPOD_RESOURCE_TYPES,
    MISSING_HYPERPOD_TYPES,
)
from config.schema import BusinessUnitConfig
from core.accelerators import GPUS_PER_INSTANCE, MIG_PROFILES


@pytest.fixture
def bu_with_hyperpod(valid_bu: dict[str, Any]) -> dict[str, Any]:
    return add_hyperpod(valid_bu)


def validate_cli(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """`python -m config validate <path>`: its exit code and its error lines."""
    code = config_cli(config_args(["validate", str(path)]))
    return code, capsys.readouterr().err.splitlines()


def test_defaults_pin_every_addon_and_the_supported_kubernetes(
    bu_with_hyperpod: dict[str, Any],
) -> None:
    hp = BusinessUnitConfig.model_validate(bu_with_hyperpod).hyperpod
    assert hp is not None
    assert hp.kubernetes_version == "1.33"
    versions = hp.addons.model_dump()
    assert set(versions) == set(ADDON_NAMES)
    assert all(v.startswith("v") and "-eksbuild." in v for v in versions.values())
    assert hp.addons.kube_proxy.startswith("v1.33.")
    assert hp.system_group.instance_type == "ml.m5.2xlarge"
    assert [t.namespace for t in hp.teams] == ["hyperpod-ns-nlp", "hyperpod-ns-vision"]
    assert hp.teams[0].queue == "hyperpod-ns-nlp-localqueue"
    assert hp.fsx.deployment_type == "PERSISTENT_2"
    assert hp.gpu_groups[0].mig_label == "all-1g.18gb"


def test_mig_profiles_offered_is_what_the_groups_provide(bu_with_hyperpod: dict[str, Any]) -> None:
    hp = BusinessUnitConfig.model_validate(bu_with_hyperpod).hyperpod
    assert hp is not None
    assert hp.mig_profiles_offered() == frozenset({"1g.18gb"})
    bu_with_hyperpod["hyperpod"]["gpu_groups"][1]["mig"] = {
        "profiles": {"3g.40gb": 1, "4g.40gb": 1}
    }
    bu_with_hyperpod["hyperpod"]["quotas"] = []
    hp = BusinessUnitConfig.model_validate(bu_with_hyperpod).hyperpod
    assert hp is not None
    assert hp.mig_profiles_offered() == frozenset({"1g.18gb", "3g.40gb", "4g.40gb"})
    assert hp.gpu_groups[1].mig_label == "mixed-1-3g.40gb-1-4g.40gb"


def test_accelerator_tables_agree() -> None:
    for instance_type, profiles in MIG_PROFILES.items():
        assert GPUS_PER_INSTANCE[instance_type] == 8
        for profile in profiles.values():
            assert profile.compute * profile.slices <= 7
            assert profile.memory_eighths * profile.slices <= 8


H = "hyperpod"
# mistake(what is wrong, field path, value, words the reason must contain[, at=the error's path])
HYPERPOD_CASES = [
    mistake(
        "MIG profile not on that type",
        f"{H}.gpu_groups.0.mig",
        "all-1g.10gb",
        "1g.18gb, 1g.35gb",  # the message lists the allowed profiles
    ),
    mistake(
        "MIG on a non-MIG type",
        f"{H}.gpu_groups.1",
        {"name": "g5", "instance_type": "ml.g5.48xlarge", "mig": "all-1g.10gb"},
        "does not support MIG",
        at=f"{H}.gpu_groups.1.mig",
    ),
    mistake(
        "MIG on a flexible group",
        f"{H}.gpu_groups.0.alternative_instance_types",
        ["ml.p5e.48xlarge"],
        "flexible instance group",
        at=f"{H}.gpu_groups.0.mig",
    ),
    mistake(
        "mixed layout larger than a GPU",
        f"{H}.gpu_groups.0.mig",
        {"profiles": {"4g.71gb": 2}},
        "8/7 compute",
        at=f"{H}.gpu_groups.0.mig.profiles",
    ),
    mistake(
        "whole-GPU quota over capacity",
        f"{H}.quotas.1.gpus",
        9,
        "team 'vision' asks for 9 whole GPUs of ml.p5.48xlarge; with the other quotas on them "
        "(nlp 8) that is 17, the groups provide 16 (short by 1)",
    ),
    mistake(
        "MIG slice quota over capacity",
        f"{H}.quotas.2.mig.count",
        57,
        "team 'nlp' asks for 57 mig-1g.18gb slices of ml.p5en.48xlarge, the groups provide 56 "
        "(short by 1)",
    ),
    mistake(
        "MIG quota on a profile no group has",
        f"{H}.quotas.2.mig.profile",
        "3g.71gb",
        "provide 1g.18gb",
    ),
    mistake("unknown team in a quota", f"{H}.quotas.0.team", "speech", "unknown team"),
    mistake(
        "quota on a type without a group",
        f"{H}.quotas.0.instance_type",
        "ml.p4d.24xlarge",
        "no GPU group of type ml.p4d.24xlarge",
    ),
    mistake("zero GPU groups", f"{H}.gpu_groups", [], "at least 1"),
    mistake(
        "Kubernetes version not supported",
        f"{H}.kubernetes_version",
        "1.27",
        "choose 1.32, 1.33, 1.34",
    ),
    mistake(
        "unquoted Kubernetes version",
        f"{H}.kubernetes_version",
        1.33,  # written unquoted: YAML reads a float
        'YAML reads 1.33 as a number, not text: quote it: kubernetes_version: "1.33"',
    ),
    mistake(
        "kube-proxy for another Kubernetes",
        f"{H}.kubernetes_version",
        "1.32",
        "is for Kubernetes 1.33",
        at=f"{H}.addons.kube_proxy",
    ),
    mistake(
        "add-on version of the wrong shape",
        f"{H}.addons",
        {"cert_manager": "1.18.2"},
        "eksbuild",
        at=f"{H}.addons.cert_manager",
    ),
    mistake("instance count below 1", f"{H}.gpu_groups.1.count", 0, "or equal to 1"),
    mistake("EBS size out of range", f"{H}.gpu_groups.1.ebs_volume_gb", 20000, "16384"),
    mistake(
        "FSx throughput not offered",
        f"{H}.fsx",
        {"deployment_type": "PERSISTENT_1", "throughput_mbps_per_tib": 250},
        "choose 50, 100, 200",
        at=f"{H}.fsx.throughput_mbps_per_tib",
    ),
    mistake(
        "FSx capacity not a valid size",
        f"{H}.fsx",
        {"storage_capacity_gib": 3000},
        "2400",
        at=f"{H}.fsx.storage_capacity_gib",
    ),
    mistake("chart digest not a sha256", f"{H}.dependencies_chart.digest", "latest", "sha256"),
    mistake(
        "admin role not an IAM role name",
        f"{H}.admin_roles.0",
        "platform admin",
        "'platform admin' is not an IAM role name",
    ),
    mistake("AZ outside the BU", f"{H}.availability_zone", "us-west-2c", "AZs"),
    mistake("team name too long", f"{H}.teams.0.name", "a" * 19, "at most 18"),
    mistake("duplicate team", f"{H}.teams.1.name", "nlp", "duplicate team nlp", at=f"{H}.teams"),
    mistake("unknown field in hyperpod", f"{H}.nodes", 3, "unknown field"),
    mistake("unknown field in a GPU group", f"{H}.gpu_groups.0.gpus", 8, "unknown field"),
    mistake("unknown field in a team", f"{H}.teams.0.queue", "q", "unknown field"),
    mistake("unknown field in a quota", f"{H}.quotas.0.cpus", 4, "unknown field"),
    mistake(
        "unknown field in addons",
        f"{H}.addons",
        {"kueue": "v1.0.0-eksbuild.1"},
        "unknown field",
        at=f"{H}.addons.kueue",
    ),
    mistake(
        "unknown field in fsx", f"{H}.fsx", {"size": 1200}, "unknown field", at=f"{H}.fsx.size"
    ),
    mistake(
        "unknown field in observability",
        f"{H}.observability",
        {"dcgm": True},
        "unknown field",
        at=f"{H}.observability.dcgm",
    ),
    mistake(
        "unknown field in the chart",
        f"{H}.dependencies_chart.url",
        "https://github.com/aws/sagemaker-hyperpod-cli",
        "unknown field",
    ),
    mistake(
        "unknown field in the scheduler",
        f"{H}.scheduler",
        {"preemption": True},
        "unknown field",
        at=f"{H}.scheduler.preemption",
    ),
    mistake(
        "unknown field in the system group",
        f"{H}.system_group",
        {"gpus": 0},
        "unknown field",
        at=f"{H}.system_group.gpus",
    ),
]


@pytest.mark.parametrize("case", HYPERPOD_CASES)
def test_invalid_hyperpod_config_names_file_and_field(
    bu_with_hyperpod: dict[str, Any], write_bu: Callable[..., Path], case: tuple[Any, ...]
) -> None:
    assert_case_rejected(write_bu, bu_with_hyperpod, case)


P5 = {"name": "whole", "instance_type": "ml.p5.48xlarge", "count": 2}  # 16 H100
P5EN_ALL_1G = {"name": "mig", "instance_type": "ml.p5en.48xlarge", "mig": "all-1g.18gb"}  # 56
P5EN_ALL_3G = {"name": "mig3", "instance_type": "ml.p5en.48xlarge", "mig": "all-3g.71gb"}  # 16
P4D_MIXED = {  # 8 GPUs x (1 x 3g.20gb + 1 x 4g.20gb), twice
    "name": "mixed",
    "instance_type": "ml.p4d.24xlarge",
    "count": 2,
    "mig": {"profiles": {"3g.20gb": 1, "4g.20gb": 1}},
}


def whole(team: str, instance_type: str, gpus: int) -> dict[str, Any]:
    """A team's quota of whole GPUs of a type."""
    return {"team": team, "instance_type": instance_type, "gpus": gpus}


def slices(team: str, instance_type: str, profile: str, count: int) -> dict[str, Any]:
    """A team's quota of MIG slices of a type, and no whole GPUs."""
    return {**whole(team, instance_type, 0), "mig": {"profile": profile, "count": count}}


# (case, groups, quotas, problems expected)
CAPACITY_TABLE = [
    (
        "whole GPUs exactly used",
        [P5],
        [whole("nlp", "ml.p5.48xlarge", 8), whole("vision", "ml.p5.48xlarge", 8)],
        [],
    ),
    (
        "whole GPUs one short",
        [P5],
        [whole("nlp", "ml.p5.48xlarge", 10), whole("vision", "ml.p5.48xlarge", 7)],
        [
            "quotas.0.gpus: team 'nlp' asks for 10 whole GPUs of ml.p5.48xlarge; with the other quotas on them (vision 7) that is 17, the groups provide 16 (short by 1)",  # noqa: E501
            "quotas.1.gpus: team 'vision' asks for 7 whole GPUs of ml.p5.48xlarge; with the other quotas on them (nlp 10) that is 17, the groups provide 16 (short by 1)",  # noqa: E501
        ],
    ),
    (
        "all-1g slices: 7 per GPU x 8",
        [P5EN_ALL_1G],
        [
            slices("nlp", "ml.p5en.48xlarge", "1g.18gb", 50),
            slices("vision", "ml.p5en.48xlarge", "1g.18gb", 6),
        ],
        [],
    ),
    (
        "all-1g slices over",
        [P5EN_ALL_1G],
        [
            slices("nlp", "ml.p5en.48xlarge", "1g.18gb", 50),
            slices("vision", "ml.p5en.48xlarge", "1g.18gb", 7),
        ],
        [
            "quotas.0.mig.count: team 'nlp' asks for 50 mig-1g.18gb slices of ml.p5en.48xlarge; with the other quotas on them (vision 7) that is 57, the groups provide 56 (short by 1)",  # noqa: E501
            "quotas.1.mig.count: team 'vision' asks for 7 mig-1g.18gb slices of ml.p5en.48xlarge; with the other quotas on them (nlp 50) that is 57, the groups provide 56 (short by 1)",  # noqa: E501
        ],
    ),
    (
        "all-3g slices: 2 per GPU",
        [P5EN_ALL_3G],
        [slices("nlp", "ml.p5en.48xlarge", "3g.71gb", 16)],
        [],
    ),
    (
        "two layouts of one type add up per profile",
        [P5EN_ALL_1G, P5EN_ALL_3G],
        [
            slices("nlp", "ml.p5en.48xlarge", "1g.18gb", 56),
            slices("vision", "ml.p5en.48xlarge", "3g.71gb", 17),
        ],
        [
            "quotas.1.mig.count: team 'vision' asks for 17 mig-3g.71gb slices of ml.p5en.48xlarge, the groups provide 16 (short by 1)"  # noqa: E501
        ],
    ),
    (
        "a MIG group offers no whole GPUs",
        [P5EN_ALL_1G],
        [whole("nlp", "ml.p5en.48xlarge", 1)],
        [
            "quotas.0.gpus: team 'nlp' asks for 1 whole GPUs of ml.p5en.48xlarge, the groups provide 0 (short by 1)"  # noqa: E501
        ],
    ),
    (
        "mixed layout: each profile once per GPU",
        [P4D_MIXED],
        [
            slices("nlp", "ml.p4d.24xlarge", "3g.20gb", 16),
            slices("vision", "ml.p4d.24xlarge", "4g.20gb", 16),
        ],
        [],
    ),
    (
        "mixed layout over for one profile",
        [P4D_MIXED],
        [slices("nlp", "ml.p4d.24xlarge", "4g.20gb", 17)],
        [
            "quotas.0.mig.count: team 'nlp' asks for 17 mig-4g.20gb slices of ml.p4d.24xlarge, the groups provide 16 (short by 1)"  # noqa: E501
        ],
    ),
    (
        "whole and MIG on separate types",
        [P5, P5EN_ALL_1G],
        [whole("nlp", "ml.p5.48xlarge", 16), slices("nlp", "ml.p5en.48xlarge", "1g.18gb", 56)],
        [],
    ),
]


@pytest.mark.parametrize("case", CAPACITY_TABLE, ids=[c[0] for c in CAPACITY_TABLE])
def test_capacity_arithmetic(case: tuple[Any, ...]) -> None:
    _, groups, quotas, expected = case
    raw = {**copy.deepcopy(HYPERPOD), "gpu_groups": groups, "quotas": []}
    hp = HyperPod.model_validate(raw)
    with_quotas = hp.model_copy(update={"quotas": [Quota.model_validate(q) for q in quotas]})
    assert [f"{p.path}: {p}" for p in quota_problems(with_quotas)] == expected
    # The same quotas through the schema: rejected exactly when the arithmetic says so.
    if expected:
        with pytest.raises(ValueError, match="short by"):
            HyperPod.model_validate({**raw, "quotas": quotas})
    else:
        assert HyperPod.model_validate({**raw, "quotas": quotas}).quotas


def test_a_region_without_hyperpod_in_cloudformation_is_refused(
    bu_with_hyperpod: dict[str, Any], write_bu: Callable[..., Path]
) -> None:
    bu_with_hyperpod["region"] = "eu-west-1"
    bu_with_hyperpod["network"]["availability_zones"] = ["eu-west-1a", "eu-west-1b"]
    path = write_bu(bu_with_hyperpod)
    loaded, errors = load_all([path])
    assert loaded == []
    assert [str(e) for e in errors] == [
        f"{path}: hyperpod: CloudFormation in eu-west-1 lacks "
        "AWS::SageMaker::ClusterSchedulerConfig, which the HyperPod stack needs; a BU with a "
        "hyperpod section needs one of ap-south-1, eu-central-1, us-east-1"
    ]
    del bu_with_hyperpod["hyperpod"]  # the same BU without a cluster is fine there
    assert load_all([write_bu(bu_with_hyperpod)])[1] == []


def test_hyperpod_regions_are_those_whose_registry_has_every_hyperpod_type() -> None:
    """Recomputed from the registry schemas the cfn-lint gate checks against."""
    providers = Path(cfnlint.__file__).parent / "data" / "schemas" / "providers"
    offered = {
        region
        for region in AVAILABILITY_ZONES
        if set(HYPERPOD_RESOURCE_TYPES)
        <= set(json.loads((providers / f"{region}.json").read_text(encoding="utf-8")))
    }
    assert offered == HYPERPOD_REGIONS


def _providers() -> Path:
    return Path(cfnlint.__file__).parent / "data" / "schemas" / "providers"


def test_missing_types_per_region_are_cfn_lints() -> None:
    """Each region's refusal names exactly the types its registry (cfn-lint's) lacks."""
    recomputed = {
        region: tuple(
            t
            for t in HYPERPOD_RESOURCE_TYPES
            if t not in json.loads((_providers() / f"{region}.json").read_text(encoding="utf-8"))
        )
        for region in AVAILABILITY_ZONES
    }
    assert recomputed == MISSING_HYPERPOD_TYPES


def test_region_refusal_names_only_the_missing_type(
    bu_with_hyperpod: dict[str, Any],
    write_bu: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    bu_with_hyperpod["region"] = "eu-north-1"  # has the scheduler config, lacks ComputeQuota
    bu_with_hyperpod["network"]["availability_zones"] = ["eu-north-1a", "eu-north-1b"]
    path = write_bu(bu_with_hyperpod)
    assert validate_cli(path, capsys) == (
        1,
        [
            f"{path}: hyperpod: CloudFormation in eu-north-1 lacks AWS::SageMaker::ComputeQuota, "
            "which the HyperPod stack needs; a BU with a hyperpod section needs one of "
            "ap-south-1, eu-central-1, us-east-1"
        ],
    )


def test_every_quota_over_capacity_is_named(
    bu_with_hyperpod: dict[str, Any],
    write_bu: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Raising nlp's quota names nlp's line (the one changed) and vision's (the other share)."""
    bu_with_hyperpod["hyperpod"]["quotas"][0]["gpus"] = 10
    path = write_bu(bu_with_hyperpod)
    assert validate_cli(path, capsys) == (
        1,
        [
            f"{path}: hyperpod.quotas.0.gpus: team 'nlp' asks for 10 whole GPUs of "
            "ml.p5.48xlarge; with the other quotas on them (vision 8) that is 18, the groups "
            "provide 16 (short by 2)",
            f"{path}: hyperpod.quotas.1.gpus: team 'vision' asks for 8 whole GPUs of "
            "ml.p5.48xlarge; with the other quotas on them (nlp 10) that is 18, the groups "
            "provide 16 (short by 2)",
        ],
    )


def test_a_changed_group_type_names_every_quota_on_the_old_type(
    bu_with_hyperpod: dict[str, Any],
    write_bu: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    bu_with_hyperpod["hyperpod"]["gpu_groups"][1]["instance_type"] = "ml.p4de.24xlarge"
    path = write_bu(bu_with_hyperpod)
    reason = "no GPU group of type ml.p5.48xlarge; groups have ml.p4de.24xlarge, ml.p5en.48xlarge"
    assert validate_cli(path, capsys) == (
        1,
        [
            f"{path}: hyperpod.quotas.0.instance_type: {reason}",
            f"{path}: hyperpod.quotas.1.instance_type: {reason}",
        ],
    )


def test_alternative_instance_types_are_known_gpu_types_of_the_same_size(
    bu_with_hyperpod: dict[str, Any],
    write_bu: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    group = bu_with_hyperpod["hyperpod"]["gpu_groups"][1]  # ml.p5.48xlarge, 8 GPUs
    group["alternative_instance_types"] = [
        "ml.p5e.48xlarge",  # fine: 8 GPUs too
        "ml.m5.xlarge",
        "ml.p5.48xlarge",
        "ml.g5.12xlarge",
        "ml.p5e.48xlarge\n",
    ]
    path = write_bu(bu_with_hyperpod)
    where = f"{path}: hyperpod.gpu_groups.1.alternative_instance_types"
    known = ", ".join(sorted(GPUS_PER_INSTANCE))
    assert validate_cli(path, capsys) == (
        1,
        [
            f"{where}.1: ml.m5.xlarge is not a GPU type this platform knows; known: {known}",
            f"{where}.2: ml.p5.48xlarge is already one of this group's instance types",
            f"{where}.3: ml.g5.12xlarge has 4 GPUs, ml.p5.48xlarge 8: the group's capacity (and "
            "its quotas) assume the same number on every instance",
            # A newline that a quoted YAML value carries stays on the problem's one line.
            f"{where}.4: ml.p5e.48xlarge\\n is not a GPU type this platform knows; known: {known}",
        ],
    )


def test_admin_roles_may_be_empty_but_not_left_out(
    bu_with_hyperpod: dict[str, Any],
    write_bu: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`[]` is a cluster only the deployment administers (a fresh clone); a file that does not
    say is refused, so nobody loses access by a deleted line."""
    bu_with_hyperpod["hyperpod"]["admin_roles"] = []
    assert validate_cli(write_bu(bu_with_hyperpod), capsys)[0] == 0
    del bu_with_hyperpod["hyperpod"]["admin_roles"]
    path = write_bu(bu_with_hyperpod)
    assert validate_cli(path, capsys) == (1, [f"{path}: hyperpod.admin_roles: Field required"])
