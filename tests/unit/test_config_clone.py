"""`python -m config new` clones a BU's shape (sections, sizes, teams, quotas, groups, endpoints)
and comments, but none of its people: every field that names a person or principal is empty
with a FILL comment, the clone validates unedited, and what to review is printed line by line.
(tests/stacks synthesizes such a clone, `risk` from `fraud`, with every gate.)"""

import shutil
from pathlib import Path

import pytest

from config.__main__ import main as config_cli
from config.__main__ import parse_args as config_args
from config.loader import CONFIG_DIR, config_files, load_valid
from config.schema import BusinessUnitConfig

EXAMPLES = ("fraud", "credit", "marketing")


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    for path in config_files(CONFIG_DIR):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def _comments(text: str) -> set[str]:
    return {line.split("#", 1)[1].strip() for line in text.splitlines() if "#" in line}


def _people(cfg: BusinessUnitConfig) -> set[str]:
    """Every value of ``cfg`` that names a person or principal."""
    names: set[str] = set()
    if cfg.studio is not None:
        names |= {u.user_name for u in cfg.studio.users} | {u.user_id for u in cfg.studio.users}
        names |= {g.group_id for g in cfg.studio.groups} | {g.name for g in cfg.studio.groups}
        names |= {s.owner for s in cfg.studio.shared_spaces}
    if cfg.hyperpod is not None:
        names |= set(cfg.hyperpod.admin_roles)
        if cfg.hyperpod.spaces is not None:
            names |= {role for team in cfg.hyperpod.spaces.teams for role in team.roles}
    if cfg.governance is not None:
        names |= set(cfg.governance.notification_emails)
    return names


def _shape(hyperpod: object) -> dict[str, object]:
    """The hyperpod section without its people (admin roles, each spaces team's roles)."""
    dump = hyperpod.model_dump(exclude={"admin_roles"})  # type: ignore[attr-defined]
    for team in (dump.get("spaces") or {}).get("teams", []):
        team.pop("roles")
    return dump


@pytest.mark.parametrize("source", EXAMPLES)
def test_a_clone_has_the_shape_and_comments_but_no_ones_access(
    directory: Path, capsys: pytest.CaptureFixture[str], source: str
) -> None:
    args = config_args(["new", "risk", "--from", source, "--config-dir", str(directory)])
    assert config_cli(args) == 0
    configs = {c.name: c for c in load_valid(config_files(directory))}  # valid, unedited
    base, clone = configs[source], configs["risk"]
    assert base.studio is not None
    assert clone.studio is not None
    assert base.hyperpod is not None
    assert clone.hyperpod is not None
    # The shape.
    assert (clone.region, clone.network.egress) == (base.region, base.network.egress)
    assert _shape(clone.hyperpod) == _shape(base.hyperpod)
    assert clone.studio.model_dump(exclude={"users", "groups", "shared_spaces"}) == (
        base.studio.model_dump(exclude={"users", "groups", "shared_spaces"})
    )
    assert (clone.mlflow, clone.endpoints) == (base.mlflow, base.endpoints)
    # No one's access.
    assert (clone.studio.users, clone.studio.groups, clone.studio.shared_spaces) == ([], [], [])
    assert clone.hyperpod.admin_roles == []
    text = (directory / "risk.yaml").read_text(encoding="utf-8")
    assert _people(base)
    assert not [person for person in _people(base) if person in text]
    # The source's comments, but the one on the emptied admin_roles line.
    source_text = (directory / f"{source}.yaml").read_text(encoding="utf-8")
    assert _comments(source_text) - _comments(text) == {
        "IAM role names in this account: EKS cluster admins"
    }


def test_the_clone_prints_what_to_review(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = config_args(["new", "risk", "--from", "fraud", "--config-dir", str(directory)])
    assert config_cli(args) == 0
    target = directory / "risk.yaml"
    first, *review = capsys.readouterr().out.splitlines()
    assert first == f"wrote {target} (cidr 10.67.0.0/16) from fraud; review before deploying:"
    assert [line.removeprefix(f"{target}: ").split(": ", 1)[0] for line in review] == [
        "account",
        "tags.owner",
        "tags.cost_center",
        "studio.identity_center",
        "studio.users",
        "studio.groups",
        "studio.shared_spaces",
        "hyperpod.admin_roles",
        "hyperpod.dependencies_chart.digest",
        "endpoints.items.0.model",
        "endpoints.items.1.model",
    ]
    assert review[4] == (
        f"{target}: studio.users: empty (fraud had 2): Identity Center users who sign in: "
        "{user_name: <UserName>, user_id: <identity-store user ID>}"
    )
    text = target.read_text(encoding="utf-8")
    assert "  users: []  # FILL: Identity Center users who sign in:" in text
    # A shared space needs an owner: the clone lists fraud's spaces for the user to re-add.
    assert "  #   - {name: fraud-team-notebooks, owner: <a user>}\n" in text


def test_a_comment_before_the_next_key_outlives_the_emptied_list(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ruamel files a full-line comment under the previous value's last leaf; emptying that
    value must not drop the comment that introduces the next key."""
    fraud = directory / "fraud.yaml"
    note = "  # Groups sign in as whole teams.\n"
    fraud.write_text(
        fraud.read_text(encoding="utf-8").replace("  groups:\n", note + "  groups:\n"),
        encoding="utf-8",
    )
    args = config_args(["new", "risk", "--from", "fraud", "--config-dir", str(directory)])
    assert config_cli(args) == 0
    lines = (directory / "risk.yaml").read_text(encoding="utf-8").splitlines(keepends=True)
    users = next(i for i, line in enumerate(lines) if line.startswith("  users: []"))
    assert lines[users + 1] == note
    assert lines[users + 2].startswith("  groups: []")


def test_a_model_uri_of_the_source_bucket_becomes_a_prefix_of_the_clones(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credit = directory / "credit.yaml"
    uri = "s3://credit-models-111111111111-us-east-1/qwen3-4b-tools/v1/"
    credit.write_text(
        credit.read_text(encoding="utf-8").replace("model: qwen3-4b-tools/v1/", f"model: {uri}"),
        encoding="utf-8",
    )
    argv = ["new", "risk", "--from", "credit", "--account", "555555555555"]
    assert config_cli(config_args([*argv, "--config-dir", str(directory)])) == 0
    text = (directory / "risk.yaml").read_text(encoding="utf-8")
    assert 'account: "555555555555"' in text  # quoted: YAML would read a number
    assert "model: qwen3-4b-tools/v1/" in text
    assert uri not in text


def test_a_clone_that_would_be_ambiguous_in_iam_is_not_written(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["new", "fraud-ops", "--from", "credit", "--config-dir", str(directory)]
    assert config_cli(config_args(argv)) == 1
    target = directory / "fraud-ops.yaml"
    assert capsys.readouterr().err.splitlines() == [
        f"{target}: name: BU 'fraud-ops' and BU 'fraud' ({directory / 'fraud.yaml'}) share "
        "account 111111111111, and 'fraud-ops' starts with 'fraud-': a grant on fraud-* "
        "resources would reach fraud-ops's too; rename one"
    ]
    assert not target.exists()
