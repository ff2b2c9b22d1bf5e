"""The BU schema and loader: valid examples pass, and each kind of mistake names file and field."""

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness.config_errors import assert_case_rejected, mistake

from config.__main__ import main as config_cli
from config.__main__ import next_free_cidr
from config.__main__ import parse_args as config_args
from config.loader import (
    CONFIG_DIR,
    ConfigInvalidError,
    config_files,
    load_all,
    load_valid,
)
from config.schema import BusinessUnitConfig
from core.naming import BUCKET_PURPOSES, MAX_BUCKET_NAME, Naming


def test_examples_are_valid_and_distinct() -> None:
    configs = load_valid(config_files())
    assert {c.name for c in configs} >= {"fraud", "credit", "marketing"}
    assert all(c.removal_policy in {"retain", "destroy"} for c in configs)


def test_defaults_live_in_the_schema(valid_bu: dict[str, Any]) -> None:
    cfg = BusinessUnitConfig.model_validate(valid_bu)
    assert cfg.network.egress == "closed"
    assert cfg.network.nat_gateway_count == 0
    assert cfg.network.private_subnet_prefix == 19
    assert cfg.removal_policy == "retain"
    assert (cfg.studio, cfg.hyperpod, cfg.mlflow, cfg.endpoints) == (None, None, None, None)


def test_nat_modes_count_gateways(valid_bu: dict[str, Any]) -> None:
    valid_bu["network"]["egress"] = "nat"
    assert BusinessUnitConfig.model_validate(valid_bu).network.nat_gateway_count == 2
    valid_bu["network"]["nat_gateways"] = "single"
    assert BusinessUnitConfig.model_validate(valid_bu).network.nat_gateway_count == 1


def test_models_are_frozen(valid_bu: dict[str, Any]) -> None:
    cfg = BusinessUnitConfig.model_validate(valid_bu)
    with pytest.raises(ValueError, match="frozen"):
        cfg.name = "other"  # type: ignore[misc]


# Ranges outside RFC 1918, each refused for that reason (what is wrong: the CIDR).
NOT_RFC_1918 = {
    "public CIDR": "8.8.0.0/16",
    # `ipaddress.is_private` admits these; a VPC cannot use them.
    "loopback CIDR": "127.0.0.0/16",
    "link-local CIDR": "169.254.0.0/16",
    "benchmarking CIDR": "198.18.0.0/16",
    "documentation CIDR": "192.0.2.0/24",
    "this-network CIDR": "0.0.0.0/16",
    "reserved class E CIDR": "240.0.0.0/16",
    # RFC 6598 shared space: kept free for EKS pod secondary CIDRs (README, network.cidr).
    "shared-address CIDR": "100.64.0.0/16",
    "straddles 172.16.0.0/12": "172.15.0.0/16",
}
# mistake(what is wrong, field path, value, words the reason must contain[, at=the error's path])
SINGLE_FILE_CASES = [
    mistake("bad CIDR", "network.cidr", "10.0.0.300/16", "CIDR"),
    mistake("CIDR with host bits", "network.cidr", "10.80.0.1/16", "host bits"),
    *(mistake(what, "network.cidr", cidr, "RFC 1918") for what, cidr in NOT_RFC_1918.items()),
    mistake("VPC too large", "network.cidr", "10.0.0.0/8", "/16"),
    mistake("unknown field", "colour", "blue", "unknown field"),
    mistake("unknown nested field", "network.igw", True, "unknown field"),
    mistake(
        "wrong AZ for region",
        "network.availability_zones",
        ["us-east-1a", "us-west-2a"],
        "us-east-1a",
    ),
    mistake("duplicate AZ", "network.availability_zones", ["us-west-2a", "us-west-2a"], "unique"),
    mistake("one AZ only", "network.availability_zones", ["us-west-2a"], "at least 2"),
    mistake("unknown region", "region", "mars-north-1", "is not a region this platform knows"),
    mistake("name too long", "name", "a-very-long-business-unit", "over the AWS limit of 63"),
    mistake("name with capitals", "name", "Payments", "lowercase"),
    mistake("name with double hyphen", "name", "pay--ments", "single hyphens"),
    mistake("short account ID", "account", "12345", "12-digit"),
    mistake("Arabic-Indic digits in account ID", "account", "\u0661" * 12, "12-digit"),
    mistake("unquoted account ID", "account", 333333333333, 'quote it: account: "333333333333"'),
    mistake("bad egress mode", "network.egress", "open", "'closed' or 'nat'"),
    mistake(
        "nat settings while closed",
        "network.nat_gateways",
        "single",
        "only applies when egress is 'nat'",
    ),
    mistake(
        "public subnet while closed",
        "network.public_subnet_prefix",
        24,
        "only applies when egress is 'nat'",
    ),
    mistake("bad nat mode", "network.nat_gateways", "two", "one_per_az"),
    mistake("subnet too small", "network.private_subnet_prefix", 24, "too small"),
    mistake("subnets do not fit", "network.cidr", "10.80.0.0/19", "need"),
    mistake("bad tag value", "tags.owner", "team<script>", "tag values"),
    mistake("reserved tag key", "tags.extra", {"aws:owner": "x"}, "reserved"),
    # CloudFormation's 50 per resource, less the platform's 4 and a subnet's own 4.
    mistake("too many tags", "tags.extra", {f"k{i}": "v" for i in range(43)}, "at most 42"),
    mistake("missing cost centre", "tags", {"owner": "x"}, "required", at="tags.cost_center"),
    mistake("bad removal policy", "removal_policy", "snapshot", "'retain' or"),
    mistake("bad flow-log retention", "network.flow_log_retention_days", 30, "365"),
    mistake(
        "placeholder with unknown field",
        "studio",
        {"domain": "x"},
        "unknown field",
        at="studio.domain",
    ),
]


@pytest.mark.parametrize("case", SINGLE_FILE_CASES)
def test_invalid_config_names_file_and_field(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path], case: tuple[Any, ...]
) -> None:
    assert_case_rejected(write_bu, valid_bu, case)


def test_the_most_extra_tags_that_fit_every_resource_validate(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path]
) -> None:
    # Keys the platform sets itself do not count twice (they replace, not add).
    valid_bu["tags"]["extra"] = {f"k{i}": "v" for i in range(42)} | {"environment": "dev"}
    assert load_all([write_bu(valid_bu)])[1] == []


def test_yaml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n", encoding="utf-8")
    _, errors = load_all([path])
    assert [e.path for e in errors] == ["<yaml>"]
    assert str(errors[0]).startswith(f"{path}: ")


def test_duplicate_bu_name_across_files(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path]
) -> None:
    first = write_bu(valid_bu, "a")
    other = copy.deepcopy(valid_bu)
    other["network"]["cidr"] = "10.81.0.0/16"
    second = write_bu(other, "b")
    _, errors = load_all([first, second])
    assert [str(e) for e in errors] == [
        f"{second}: name: duplicate BU name 'payments' (also {first})"
    ]


def _overlapping(valid_bu: dict[str, Any]) -> dict[str, Any]:
    """BU lending, in ``valid_bu``'s account and region, its CIDR inside ``valid_bu``'s."""
    other = copy.deepcopy(valid_bu)
    other["name"] = "lending"
    other["network"]["cidr"] = "10.80.128.0/17"
    other["network"]["private_subnet_prefix"] = 20
    return other


def test_overlapping_cidrs_in_one_account_and_region(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path]
) -> None:
    first = write_bu(valid_bu, "a")
    second = write_bu(_overlapping(valid_bu), "b")
    _, errors = load_all([first, second])
    assert len(errors) == 1
    assert str(errors[0]).startswith(
        f"{second}: network.cidr: 10.80.128.0/17 overlaps 10.80.0.0/16"
    )


def test_same_cidr_in_another_account_is_fine(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path]
) -> None:
    other = copy.deepcopy(valid_bu)
    other["name"], other["account"] = "lending", "444444444444"
    _, errors = load_all([write_bu(valid_bu, "a"), write_bu(other, "b")])
    assert errors == []


def test_load_valid_raises_with_every_problem(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path]
) -> None:
    valid_bu["account"] = "1"
    valid_bu["region"] = "nowhere"
    with pytest.raises(ConfigInvalidError) as caught:
        load_valid([write_bu(valid_bu)])
    assert {e.path for e in caught.value.errors} == {"account", "region"}


def test_names_fit_aws_limits_for_the_longest_allowed_bu() -> None:
    naming = Naming(bu="a" * 16, account="123456789012", region="ap-southeast-2")
    assert naming.limit_problems() == []
    assert max(len(naming.bucket(p)) for p in BUCKET_PURPOSES) == MAX_BUCKET_NAME
    assert Naming(bu="a" * 17, account="123456789012", region="ap-southeast-2").limit_problems()


def test_validate_cli_prints_one_line_per_problem(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    valid_bu["account"] = "abc"
    valid_bu["network"]["egress"] = "open"
    path = write_bu(valid_bu)
    assert config_cli(config_args(["validate", str(path)])) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{path}: account: 'abc' is not a 12-digit AWS account ID",
        f"{path}: network.egress: Input should be 'closed' or 'nat'",
    ]


def test_validate_cli_accepts_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert config_cli(config_args(["validate"])) == 0
    assert "business units valid" in capsys.readouterr().out


def test_next_free_cidr_skips_taken_ranges() -> None:
    import ipaddress

    taken = [ipaddress.IPv4Network("10.64.0.0/15"), ipaddress.IPv4Network("10.67.0.0/16")]
    assert str(next_free_cidr(taken)) == "10.66.0.0/16"


def test_config_new_clones_without_overlap(tmp_path: Path) -> None:
    for path in config_files(CONFIG_DIR):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    argv = ["new", "risk", "--from", "marketing", "--account", "555555555555"]
    assert config_cli(config_args([*argv, "--config-dir", str(tmp_path)])) == 0
    loaded, errors = load_all(config_files(tmp_path))
    assert errors == []
    new = next(item.config for item in loaded if item.config.name == "risk")
    assert new.account == "555555555555"
    assert new.network.egress == "nat"  # settings come from the source BU
    assert new.tags.owner == "risk-ml-team"
    others = [item.config.network.cidr for item in loaded if item.config.name != "risk"]
    assert not any(new.network.cidr.overlaps(c) for c in others)
    # A second clone with the same name is refused, and the file stays as written.
    before = (tmp_path / "risk.yaml").read_text(encoding="utf-8")
    assert config_cli(config_args(["new", "risk", "--config-dir", str(tmp_path)])) == 1
    assert (tmp_path / "risk.yaml").read_text(encoding="utf-8") == before


def test_config_new_rejects_a_bad_account(tmp_path: Path) -> None:
    for path in config_files(CONFIG_DIR):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    args = config_args(["new", "risk", "--account", "12", "--config-dir", str(tmp_path)])
    assert config_cli(args) == 1
    assert not (tmp_path / "risk.yaml").exists()


def test_no_config_files_is_an_error(tmp_path: Path) -> None:
    _, errors = load_all(config_files(tmp_path / "missing"))
    assert [str(e) for e in errors] == ["<config>: <files>: no business-unit config files found"]


def test_validating_one_file_checks_it_against_its_directory(
    valid_bu: dict[str, Any],
    write_bu: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The newcomer ('a', sorted first) is named, not the untouched BU, relative to the cwd."""
    existing = write_bu(valid_bu, "z-existing")
    path = write_bu(_overlapping(valid_bu), "a-new")
    monkeypatch.chdir(path.parent)
    assert config_cli(config_args(["validate", path.name])) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "a-new.yaml: network.cidr: 10.80.128.0/17 overlaps 10.80.0.0/16 of BU 'payments' "
        f"({existing.name}) in 333333333333/us-west-2"
    ]


def test_validating_one_file_ignores_other_files_own_problems(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    broken = copy.deepcopy(valid_bu)
    broken["name"], broken["account"] = "broken", "nope"
    write_bu(broken, "broken")
    path = write_bu(valid_bu, "good")
    assert config_cli(config_args(["validate", str(path)])) == 0
    assert "1 business units valid (payments)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "cidr", ["10.255.0.0/16", "172.16.0.0/16", "172.31.0.0/16", "192.168.0.0/16"]
)
def test_every_rfc1918_range_is_accepted(valid_bu: dict[str, Any], cidr: str) -> None:
    valid_bu["network"]["cidr"] = cidr
    assert str(BusinessUnitConfig.model_validate(valid_bu).network.cidr) == cidr


def test_a_bu_name_that_hyphen_prefixes_another_in_its_account_is_refused(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`payments` and `payments-ops` in one account: `endpoint/payments-*` grants reach both."""
    first = write_bu(valid_bu, "a")
    other = copy.deepcopy(valid_bu)
    other["name"], other["region"] = "payments-ops", "us-east-1"  # any region: IAM is global
    other["network"]["availability_zones"] = ["us-east-1a", "us-east-1b"]
    second = write_bu(other, "b")
    assert config_cli(config_args(["validate", str(first), str(second)])) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{second}: name: BU 'payments-ops' and BU 'payments' ({first}) share account "
        "333333333333, and 'payments-ops' starts with 'payments-': a grant on payments-* "
        "resources would reach payments-ops's too; rename one"
    ]
    other["account"] = "444444444444"  # another account: no grant spans both
    assert load_all([first, write_bu(other, "b")])[1] == []
    other["account"], other["name"] = "333333333333", "paymentsops"  # no hyphen: no ambiguity
    assert load_all([first, write_bu(other, "b")])[1] == []


def test_a_bu_name_with_a_trailing_newline_is_refused(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`re.match(...$)` accepted "fraud\\n"; jsii refused it only at synth."""
    valid_bu["name"] = "payments\n"
    path = write_bu(valid_bu)
    assert config_cli(config_args(["validate", str(path)])) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: name: a BU name is 2+ lowercase letters, digits and single hyphens, starting "
        "with a letter (it prefixes bucket and DNS names)"
    ]
