"""``config new``: a new BU's file, cloned from an existing BU's file with no one's access.

The clone keeps the source's shape (sections, sizes, teams, quotas, groups, endpoints) and its
comments (ruamel.yaml round-trips them), and leaves empty every field that names a person or
principal, with a ``FILL`` comment: a new BU starts with nobody's access rather than another
BU's people. Empty is valid and synthesizes (a domain nobody can open yet, a cluster only the
deployment administers), so the clone deploys unedited; `review` lists what to fill or check.
"""

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedBase, CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from config.schema import BusinessUnitConfig


@dataclass(frozen=True)
class Clone:
    text: str
    # (field path, what to fill or check), in file order: one line each for the user.
    review: list[tuple[str, str]]


def clone_config(
    source_text: str, *, source: BusinessUnitConfig, name: str, account: str | None, cidr: str
) -> Clone:
    """``source_text`` (the source BU's file) as BU ``name``'s file; the caller validates it."""
    rt = YAML()  # round-trip: comments, key order, flow style and quoting survive
    rt.preserve_quotes = True
    rt.indent(mapping=2, sequence=4, offset=2)  # the style of config/*.yaml
    rt.width = 4096  # never re-wrap a long line
    doc = rt.load(source_text)
    review = [
        *_set_identity(doc, source, name=name, account=account, cidr=cidr),
        *_studio_people(doc, source.name),
        *_hyperpod_people(doc, source.name, name),
        *_governance_people(doc, source.name),
        *_endpoint_models(doc, source, name),
    ]
    out = io.StringIO()
    rt.dump(doc, out)
    header = (
        f"# Business unit {name}: cloned from {source.name} by `make new-bu`: its sections,\n"
        f"# sizes, teams and quotas, none of its people (each FILL below). The comments below\n"
        f"# are {source.name}'s.\n"
    )
    return Clone(header + out.getvalue(), review)


def _set_identity(
    doc: CommentedMap, source: BusinessUnitConfig, *, name: str, account: str | None, cidr: str
) -> Iterator[tuple[str, str]]:
    doc["name"] = _text(name)
    if account is None:
        yield "account", f"kept {source.name}'s account {source.account} (--account picks another)"
    else:
        doc["account"] = _text(account)
    doc["network"]["cidr"] = _text(cidr)
    doc["tags"]["owner"] = _text(f"{name}-ml-team")
    yield "tags.owner", f"set to {name}-ml-team: name the team that owns {name}"
    yield "tags.cost_center", f"kept {source.name}'s {source.tags.cost_center}"
    if source.tags.extra:
        yield "tags.extra", f"kept {source.name}'s {', '.join(source.tags.extra)}"


def _studio_people(doc: CommentedMap, source: str) -> Iterator[tuple[str, str]]:
    """Studio's people: users and groups (identity-store IDs) and shared-space owners. The
    Identity Center instance is the organization's directory, not a person: it stays, since a
    domain must sign in through one (AuthMode SSO)."""
    studio = doc.get("studio")
    if studio is None:
        return
    yield (
        "studio.identity_center",
        f"kept {source}'s Identity Center instance {studio['identity_center']['instance_arn']}: "
        "right if this account is in the same organization",
    )
    fills = {
        "users": "Identity Center users who sign in: {user_name: <UserName>, "
        "user_id: <identity-store user ID>}",
        "groups": "Identity Center groups whose members sign in: {name: <for readers>, "
        "group_id: <identity-store group ID>}",
    }
    for key, fill in fills.items():
        if studio.get(key):
            had = len(_fill(studio, key, fill))
            yield f"studio.{key}", f"empty ({source} had {had}): {fill}"
    if studio.get("shared_spaces"):
        # A shared space needs an owner from users: the clone has none, so it lists them.
        shapes = [
            "#   - " + _flow({**{k: v for k, v in s.items() if k != "owner"}, "owner": "<a user>"})
            for s in studio["shared_spaces"]
        ]
        _fill(studio, "shared_spaces", f"spaces owned by one of users; {source} had:", shapes)
        yield (
            "studio.shared_spaces",
            f"empty: {source}'s {len(shapes)} shared space(s) need an owner from studio.users "
            "(listed in a comment)",
        )


def _hyperpod_people(doc: CommentedMap, source: str, name: str) -> Iterator[tuple[str, str]]:
    hyperpod = doc.get("hyperpod")
    if hyperpod is None:
        return
    if hyperpod.get("admin_roles"):
        fill = "IAM role names in this account that administer the cluster (EKS cluster admin)"
        _fill(hyperpod, "admin_roles", fill)
        yield "hyperpod.admin_roles", f"empty: only the deployment's role administers it; {fill}"
    spaces = hyperpod.get("spaces")
    for i, team in enumerate((spaces or {}).get("teams") or []):
        if team.get("roles"):
            fill = "IAM role names of this team's people who may create spaces"
            _fill(team, "roles", fill)
            yield (
                f"hyperpod.spaces.teams.{i}.roles",
                f"empty: only cluster admins create spaces; {fill}",
            )
    yield (
        "hyperpod.dependencies_chart.digest",
        f"{source}'s digest: put here what `make stage-hyperpod-chart BU={name}` prints",
    )


def _governance_people(doc: CommentedMap, source: str) -> Iterator[tuple[str, str]]:
    """Budget alerts go to people: the clone alerts only through its own topic until filled."""
    governance = doc.get("governance")
    if governance is None or not governance.get("notification_emails"):
        return
    fill = "addresses that receive this BU's budget alerts"
    _fill(governance, "notification_emails", fill)
    if governance.get("sns_topic") is False:
        governance["sns_topic"] = True  # someone must hear of the budget: the topic, for now
    yield "governance.notification_emails", f"empty ({source}'s not copied): {fill}"


def _endpoint_models(
    doc: CommentedMap, source: BusinessUnitConfig, name: str
) -> Iterator[tuple[str, str]]:
    """A model given as the source's bucket URI becomes the same key prefix in this BU's."""
    if source.endpoints is None:
        return
    items = zip(doc["endpoints"]["items"], source.endpoints.items, strict=True)
    for i, (item, parsed) in enumerate(items):
        key = parsed.model_key(source.naming)
        if item["model"] != key:
            item["model"] = _text(key)
        yield (
            f"endpoints.items.{i}.model",
            f"{key} must hold an exported model in {name}'s models bucket before deploying",
        )


def _fill(parent: CommentedMap, key: str, fill: str, extra_lines: Sequence[str] = ()) -> Any:
    """``parent[key]`` becomes ``[]  # FILL: fill``; returns the old value. Full-line comments
    after the old value introduce the next key, so they stay (ruamel files them under the old
    value's last leaf)."""
    old = parent[key]
    following = _following(_eol_token(parent, key)) + _following(_last_leaf_token(old))
    empty = CommentedSeq()
    empty.fa.set_flow_style()
    parent[key] = empty
    indent = " " * (parent.lc.col or 0)
    lines = "".join(f"{indent}{line}\n" for line in extra_lines)
    parent.yaml_add_eol_comment(f"# FILL: {fill}", key)
    token = _eol_token(parent, key)
    token.value = f" # FILL: {fill}" + (f"\n{lines}{following}" if lines or following else "")
    return old


def _eol_token(node: CommentedBase, key: Any) -> Any:
    entry = node.ca.items.get(key)
    index = 0 if isinstance(node, CommentedSeq) else 2
    return entry[index] if entry else None


def _last_leaf_token(node: Any) -> Any:
    """The comment token after ``node``'s last line: its last entry's, recursively."""
    while isinstance(node, CommentedMap | CommentedSeq) and len(node):
        last = next(reversed(node)) if isinstance(node, CommentedMap) else len(node) - 1
        if isinstance(node[last], CommentedMap | CommentedSeq) and len(node[last]):
            node = node[last]
            continue
        return _eol_token(node, last)
    return None


def _following(token: Any) -> str:
    """The full-line comments of a token, without its end-of-line part."""
    value = token.value if token is not None else ""
    return value[value.index("\n") + 1 :] if "\n" in value else ""


def _text(value: str) -> str:
    """``value`` quoted where the validating loader would read it as something else."""
    try:
        plain = yaml.safe_load(value) == value
    except yaml.YAMLError:
        plain = False
    return value if plain else DoubleQuotedScalarString(value)


def _flow(entry: dict[str, Any]) -> str:
    parts = (f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in entry.items())
    return "{" + ", ".join(parts) + "}"
