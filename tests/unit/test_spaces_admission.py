"""The Spaces admission policies (``platform_constructs.hyperpod_spaces``): which MIG profiles a
BU's spaces may use, computed from the config, and what each team's ValidatingAdmissionPolicy
admits, evaluated offline on Workspaces shaped like the ones users send.

No CEL library is installed, so this module carries a small parser and evaluator for exactly the
CEL subset the policies use (``||``, ``&&``, ``!``, ``==``, ``!=``, ``in``, field selection,
indexing, list literals, the macros ``has`` and ``all``, ``startsWith``, ``string`` and the
Kubernetes ``quantity`` library's ``quantity``/``isGreaterThan``). Its grammar is a strict subset
of CEL's, with CEL's precedence (cel-spec ``doc/langdef.md``: ``||`` < ``&&`` < relations <
unary < member), so an expression it parses is CEL syntax, and a policy that uses anything else
fails here before it fails on a cluster.

Facts and sources:
- Workspace fields ``metadata.labels``, ``spec.templateRef.{name,namespace}``,
  ``spec.resources`` (a core ResourceRequirements), ``spec.initContainers``,
  ``spec.desiredStatus`` (Running|Stopped): jupyter-infra/jupyter-k8s
  ``api/v1alpha1/workspace_types.go``.
- MIG and whole-GPU requests of a space: ``nvidia.com/mig-<profile>`` / ``nvidia.com/gpu`` in
  ``spec.resources.requests`` and ``limits`` (AWS docs, "Customize add-on", GPU configuration;
  aws/sagemaker-hyperpod-cli ``src/sagemaker/hyperpod/cli/space_utils.py``).
- Kueue labels on the Workspace are copied to the space's Deployment and pods
  (jupyter-k8s ``internal/controller/deployment_builder.go``); HyperPod's CLI sets
  ``kueue.x-k8s.io/queue-name`` and ``kueue.x-k8s.io/priority-class`` there
  (sagemaker-hyperpod-cli ``hyperpod_space_template/v1_1/model.py``).
- Idle shutdown fields: jupyter-k8s ``api/v1alpha1/workspacetemplate_types.go``
  (``defaultIdleShutdown``, ``idleShutdownOverrides.{allow,minIdleTimeoutInMinutes,
  maxIdleTimeoutInMinutes}``) and ``docs/source/concepts/templates/bounds.md``.
"""

import copy
import json
import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest
from harness.bu_configs import add_hyperpod
from harness.template_graph import TemplateGraph
from harness.workspace_policy import assert_denying_workspace_policy

from config.schema import BusinessUnitConfig
from platform_constructs.hyperpod_spaces import (
    CONTROLLER_USER,
    GPU_RESOURCE,
    SpaceDefaults,
    SpacesTeam,
    admission_binding,
    admission_policy,
    cel_string,
    idle_shutdown,
    workspace_template,
)

# ---------------------------------------------------------------------------------------------
# A CEL subset: tokens, a recursive-descent parser to tuples, an evaluator over JSON-like values.

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'[^'\\\n]*')|(?P<int>[0-9]+)|(?P<id>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\|\||&&|==|!=|[!()\[\],.]))"
)
_MACROS = {"has", "all"}
_FUNCTIONS = {"quantity", "string"}
_METHODS = {"startsWith", "isGreaterThan"}
_VARIABLES = {"object", "request"}


class CelError(Exception):
    """What the API server would report as an evaluation error (denied: failurePolicy Fail)."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise SyntaxError(f"unexpected {text[pos : pos + 20]!r}")
        kind = match.lastgroup
        assert kind is not None
        value = match.group(kind)
        if kind == "id" and value == "in":
            kind = "op"
        out.append((kind, value))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def parse(self) -> tuple:
        node = self._or()
        if self.at != len(self.tokens):
            raise SyntaxError(f"trailing {self.tokens[self.at :]}")
        return node

    def _peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        if self.at >= len(self.tokens):
            raise SyntaxError("unexpected end")
        token = self.tokens[self.at]
        if expected is not None and token[1] != expected:
            raise SyntaxError(f"expected {expected!r}, got {token[1]!r}")
        self.at += 1
        return token

    def _left_assoc(self, op: str, name: str, operand: Callable[[], tuple]) -> tuple:
        """``operand (op operand)*``, grouped from the left as ``(name, left, right)``."""
        node = operand()
        while self._peek() == op:
            self._take()
            node = (name, node, operand())
        return node

    def _or(self) -> tuple:
        return self._left_assoc("||", "or", self._and)

    def _and(self) -> tuple:
        return self._left_assoc("&&", "and", self._rel)

    def _rel(self) -> tuple:
        node = self._unary()
        if self._peek() in ("==", "!=", "in"):
            op = self._take()[1]
            node = (op, node, self._unary())
            if self._peek() in ("==", "!=", "in"):
                raise SyntaxError("chained relation: parenthesize")
        return node

    def _unary(self) -> tuple:
        if self._peek() == "!":
            self._take()
            return ("not", self._unary())
        return self._member()

    def _args(self, close: str) -> list[tuple]:
        args: list[tuple] = []
        if self._peek() != close:
            args.append(self._or())
            while self._peek() == ",":
                self._take()
                args.append(self._or())
        self._take(close)
        return args

    def _member(self) -> tuple:
        node = self._primary()
        while self._peek() in (".", "["):
            if self._take()[1] == "[":
                node = ("index", node, self._or())
                self._take("]")
                continue
            kind, name = self._take()
            if kind != "id":
                raise SyntaxError(f"field name expected, got {name!r}")
            if self._peek() != "(":
                node = ("select", node, name)
                continue
            self._take("(")
            args = self._args(")")
            if name == "all":
                if len(args) != 2 or args[0][0] != "ident":
                    raise SyntaxError("all(var, predicate)")
                node = ("all", node, args[0][1], args[1])
            elif name in _METHODS and len(args) == 1:
                node = ("method", name, node, args[0])
            else:
                raise SyntaxError(f"method {name} is not in this subset")
        return node

    def _primary(self) -> tuple:  # noqa: PLR0911
        kind, value = self._take()
        if kind == "str":
            return ("lit", value[1:-1])
        if kind == "int":
            return ("lit", int(value))
        if value in ("true", "false"):
            return ("lit", value == "true")
        if value == "(":
            node = self._or()
            self._take(")")
            return node
        if value == "[":
            return ("list", self._args("]"))
        if kind != "id":
            raise SyntaxError(f"unexpected {value!r}")
        if self._peek() != "(":
            return ("ident", value)
        self._take("(")
        args = self._args(")")
        if value == "has":
            if len(args) != 1 or args[0][0] != "select":
                raise SyntaxError("has() takes one field selection")
            return ("has", args[0])
        if value in _FUNCTIONS and len(args) == 1:
            return ("call", value, args[0])
        raise SyntaxError(f"function {value} is not in this subset")


_QUANTITY = re.compile(r"([+-]?[0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|n|u|m|k|M|G|T)?")
_SUFFIX = {
    None: Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
}


class Quantity:
    def __init__(self, text: Any) -> None:
        if not isinstance(text, str):
            raise CelError(f"no matching overload for quantity({type(text).__name__})")
        match = _QUANTITY.fullmatch(text)
        if match is None:
            raise CelError(f"invalid quantity {text!r}")
        self.value = Fraction(match.group(1)) * _SUFFIX[match.group(2)]


def _truth(value: Any) -> bool:
    if not isinstance(value, bool):
        raise CelError(f"no such overload: bool expected, got {value!r}")
    return value


def evaluate(node: tuple, env: dict[str, Any]) -> Any:  # noqa: PLR0911, PLR0912
    op = node[0]
    if op == "lit":
        return node[1]
    if op == "ident":
        if node[1] not in env:
            raise CelError(f"undeclared reference {node[1]}")
        return env[node[1]]
    if op == "list":
        return [evaluate(n, env) for n in node[1]]
    if op in ("or", "and"):
        decisive = op == "or"
        try:
            left: Any = _truth(evaluate(node[1], env))
        except CelError as error:
            left = error
        if left is decisive:
            return decisive
        right = _truth(evaluate(node[2], env))
        if right is decisive:
            return decisive
        if isinstance(left, CelError):
            raise left
        return not decisive
    if op == "not":
        return not _truth(evaluate(node[1], env))
    if op in ("==", "!="):
        equal = evaluate(node[1], env) == evaluate(node[2], env)
        return equal if op == "==" else not equal
    if op == "in":
        item, container = evaluate(node[1], env), evaluate(node[2], env)
        if not isinstance(container, list | dict):
            raise CelError("'in' needs a list or a map")
        return item in container
    if op in ("select", "has"):
        target = node[1] if op == "has" else node
        base = evaluate(target[1], env)
        if not isinstance(base, dict):
            raise CelError(f"field selection on {type(base).__name__}")
        if op == "has":
            return target[2] in base
        if target[2] not in base:
            raise CelError(f"no such key: {target[2]}")
        return base[target[2]]
    if op == "index":
        base, key = evaluate(node[1], env), evaluate(node[2], env)
        if not isinstance(base, dict) or key not in base:
            raise CelError(f"no such key: {key}")
        return base[key]
    if op == "all":
        items = evaluate(node[1], env)
        if not isinstance(items, list | dict):
            raise CelError("all() needs a list or a map")
        return all(_truth(evaluate(node[3], {**env, node[2]: item})) for item in items)
    if op == "call":
        arg = evaluate(node[2], env)
        if node[1] == "string":
            if isinstance(arg, bool) or not isinstance(arg, str | int):
                raise CelError(f"no matching overload for string({arg!r})")
            return str(arg)
        return Quantity(arg)
    if op == "method":
        target, arg = evaluate(node[2], env), evaluate(node[3], env)
        if node[1] == "startsWith":
            if not isinstance(target, str) or not isinstance(arg, str):
                raise CelError("startsWith needs strings")
            return target.startswith(arg)
        if not isinstance(target, Quantity) or not isinstance(arg, Quantity):
            raise CelError("isGreaterThan needs quantities")
        return target.value > arg.value
    raise AssertionError(node)


def parse(text: str) -> tuple:
    tree = _Parser(text).parse()
    free = _free_identifiers(tree, set())
    assert free <= _VARIABLES, free
    return tree


def _free_identifiers(node: Any, bound: set[str]) -> set[str]:
    if not isinstance(node, tuple):
        return set()
    if node[0] == "ident":
        return set() if node[1] in bound else {node[1]}
    if node[0] == "all":
        return _free_identifiers(node[1], bound) | _free_identifiers(node[3], bound | {node[2]})
    found: set[str] = set()
    for child in node[1:]:
        if isinstance(child, list):
            for item in child:
                found |= _free_identifiers(item, bound)
        else:
            found |= _free_identifiers(child, bound)
    return found


def admit(policy: dict[str, Any], workspace: dict[str, Any], user: str = "alice") -> list[str]:
    """The messages of the validations ``workspace`` fails ([] when admitted, or when the policy
    does not apply to the request), as the API server would evaluate ``policy`` on a CREATE."""
    env = {"object": workspace, "request": {"userInfo": {"username": user}}}
    spec = policy["spec"]
    if not all(evaluate(parse(c["expression"]), env) for c in spec["matchConditions"]):
        return []
    failed = []
    for validation in spec["validations"]:
        try:
            ok = _truth(evaluate(parse(validation["expression"]), env))
        except CelError:
            ok = False  # failurePolicy: Fail
        if not ok:
            failed.append(validation["message"])
    return failed


# ---------------------------------------------------------------------------------------------
# The evaluator itself, on CEL's own semantics.


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("!has(object.a) || object.a == 'x'", True),
        ("has(object.b) && object.b.c == 'y'", True),
        ("object.missing == 'x' || true", True),  # CEL's commutative error absorption
        ("false && object.missing == 'x'", False),
        ("'k' in object.b && !('z' in object.b)", True),
        ("object.b.all(k, k in ['c', 'k']) && !object.b.all(k, k.startsWith('c'))", True),
        ("object.l.all(v, v != 'q')", True),
        ("!quantity(string(object.n)).isGreaterThan(quantity('2'))", True),
        ("quantity('1500m').isGreaterThan(quantity('1'))", True),
    ],
)
def test_the_cel_subset_evaluates_like_cel(expression: str, expected: bool) -> None:
    env = {"object": {"b": {"c": "y", "k": "v"}, "l": ["p"], "n": 2}, "request": {}}
    assert evaluate(parse(expression), env) is expected


@pytest.mark.parametrize(
    "expression",
    ["a == 'b' == 'c'", "has(object)", "object.b.size() > 1", "(object.a", "x ? y : z", "a + b"],
)
def test_the_cel_subset_refuses_what_it_does_not_know(expression: str) -> None:
    with pytest.raises(SyntaxError):
        _Parser(expression).parse()


def test_an_unknown_key_is_an_error_not_false() -> None:
    with pytest.raises(CelError):
        evaluate(parse("object.spec.templateRef.name == 'x'"), {"object": {"spec": {}}})


# ---------------------------------------------------------------------------------------------
# Which profiles a BU admits: computed from the config.


@pytest.fixture
def h200_cluster(valid_bu: dict[str, Any]) -> BusinessUnitConfig:
    """H200 groups offering five profiles: a mixed layout (1g.18gb + 2g.35gb + 3g.71gb on each
    GPU: 6/7 compute, 7/8 memory) and two all-<profile> groups."""
    raw = add_hyperpod(valid_bu)
    raw["hyperpod"]["gpu_groups"] = [
        {
            "name": "mixed",
            "instance_type": "ml.p5en.48xlarge",
            "mig": {"profiles": {"1g.18gb": 1, "2g.35gb": 1, "3g.71gb": 1}},
        },
        {"name": "four", "instance_type": "ml.p5en.48xlarge", "mig": "all-4g.71gb"},
        {"name": "seven", "instance_type": "ml.p5en.48xlarge", "mig": "all-7g.141gb"},
        {"name": "whole", "instance_type": "ml.p5.48xlarge", "count": 2},
    ]
    raw["hyperpod"]["quotas"] = [{"team": "nlp", "instance_type": "ml.p5.48xlarge", "gpus": 8}]
    raw["hyperpod"]["spaces"] = {
        "teams": [{"team": "nlp", "roles": ["ds-nlp"]}, {"team": "vision"}],
        "default_mig_profile": "1g.18gb",
        "max_mig_profile": "3g.71gb",
    }
    return BusinessUnitConfig.model_validate(raw)


OFFERED = ["1g.18gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"]


@pytest.mark.parametrize(
    ("largest", "allowed"),
    [
        ("1g.18gb", ["1g.18gb"]),
        ("2g.35gb", ["1g.18gb", "2g.35gb"]),
        ("3g.71gb", ["1g.18gb", "2g.35gb", "3g.71gb"]),
        ("4g.71gb", ["1g.18gb", "2g.35gb", "3g.71gb", "4g.71gb"]),
        ("7g.141gb", OFFERED),
    ],
)
def test_allowed_profiles_are_those_no_larger_than_the_maximum(
    h200_cluster: BusinessUnitConfig, largest: str, allowed: list[str]
) -> None:
    """A profile is admitted when it has no more compute and no more memory slices than the
    maximum (H200: 1g.18gb < 2g.35gb < 3g.71gb < 4g.71gb < 7g.141gb, NVIDIA MIG user guide via
    core/accelerators.py); the disallowed ones are the rest of what the groups offer."""
    hp = h200_cluster.hyperpod
    assert hp is not None
    assert sorted(hp.mig_profiles_offered()) == sorted(OFFERED)
    assert hp.mig_profiles_within(largest) == allowed
    assert sorted(hp.mig_profiles_offered() - set(allowed)) == sorted(set(OFFERED) - set(allowed))


def _team(name: str, priority_class: str) -> SpacesTeam:
    """A team in the namespace and queue task governance gives it, with no user roles."""
    return SpacesTeam(
        name=name,
        namespace=f"hyperpod-ns-{name}",
        queue=f"hyperpod-ns-{name}-localqueue",
        priority_class=priority_class,
        user_role_arns=(),
    )


TEAM = _team("nlp", "experimentation")
OTHER = _team("vision", "training")
TEMPLATES = ["nlp-jupyterlab", "nlp-code-editor"]


def _defaults(allowed: tuple[str, ...], max_gpus: int = 1, **more: Any) -> SpaceDefaults:
    return SpaceDefaults(
        image="111111111111.dkr.ecr.us-east-1.amazonaws.com/bu/hyperpod-mirror/sagemaker-distribution:3.4.2-gpu",
        apps=("jupyterlab", "code-editor"),
        cpu="1",
        memory="8Gi",
        storage="20Gi",
        default_mig_profile=allowed[0] if allowed else None,
        allowed_mig_profiles=allowed,
        max_gpus=max_gpus,
        idle_shutdown_minutes=120,
        **more,
    )


def _space(template: dict[str, Any], team: SpacesTeam = TEAM) -> dict[str, Any]:
    """A Workspace as the API server sees it after the add-on's mutating webhook copied the
    template's defaults in (jupyter-k8s docs/source/dive-deeper/webhooks/workspace-defaults.md),
    with the labels the README tells users to set."""
    spec = template["spec"]
    return {
        "apiVersion": "workspace.jupyter.org/v1alpha1",
        "kind": "Workspace",
        "metadata": {
            "name": "my-space",
            "namespace": team.namespace,
            "labels": {
                "kueue.x-k8s.io/queue-name": team.queue,
                "kueue.x-k8s.io/priority-class": team.priority_class,
            },
        },
        "spec": {
            "displayName": "my space",
            "desiredStatus": "Running",
            "templateRef": {
                "name": template["metadata"]["name"],
                "namespace": "jupyter-k8s-system",
            },
            "image": spec["defaultImage"],
            "resources": copy.deepcopy(spec["defaultResources"]),
        },
    }


def _with_resources(space: dict[str, Any], amounts: dict[str, Any]) -> dict[str, Any]:
    """``space`` asking for ``amounts`` besides CPU and memory, in requests and limits."""
    out = copy.deepcopy(space)
    for section in ("requests", "limits"):
        kept = {
            k: v for k, v in out["spec"]["resources"][section].items() if k in ("cpu", "memory")
        }
        kept.update(amounts)
        out["spec"]["resources"][section] = kept
    return out


@pytest.fixture
def policy(h200_cluster: BusinessUnitConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(policy, compliant space) for team nlp with the H200 cluster's allowed profiles."""
    hp = h200_cluster.hyperpod
    assert hp is not None
    assert hp.spaces is not None
    assert hp.spaces.max_mig_profile is not None
    d = _defaults(tuple(hp.mig_profiles_within(hp.spaces.max_mig_profile)))
    template = workspace_template(TEAM, "jupyterlab", TEMPLATES[0], d)
    return admission_policy(TEAM, TEMPLATES, d), _space(template)


def _message(policy: dict[str, Any], words: str) -> str:
    (message,) = [v["message"] for v in policy["spec"]["validations"] if words in v["message"]]
    return message


def test_a_space_made_from_the_teams_template_is_admitted(policy) -> None:
    rules, space = policy
    assert space["spec"]["resources"]["requests"]["nvidia.com/mig-1g.18gb"] == "1"
    assert admit(rules, space) == []
    for app_template in TEMPLATES:
        other_app = copy.deepcopy(space)
        other_app["spec"]["templateRef"]["name"] = app_template
        assert admit(rules, other_app) == []


@pytest.mark.parametrize("profile", OFFERED)
def test_each_profile_above_the_maximum_is_refused_in_requests_limits_and_init_containers(
    policy, profile: str
) -> None:
    rules, space = policy
    allowed = profile in ("1g.18gb", "2g.35gb", "3g.71gb")
    fix = _message(rules, "MIG slices")
    assert "1g.18gb, 2g.35gb, 3g.71gb" in fix
    asked = _with_resources(space, {f"nvidia.com/mig-{profile}": "1"})
    assert admit(rules, asked) == ([] if allowed else [fix])
    # Only in limits: Kubernetes defaults requests to limits, so it is asked all the same.
    limits_only = copy.deepcopy(space)
    limits_only["spec"]["resources"]["limits"][f"nvidia.com/mig-{profile}"] = "1"
    assert admit(rules, limits_only) == ([] if allowed else [fix])
    init = copy.deepcopy(space)
    init["spec"]["initContainers"] = [
        {"name": "warm", "image": "x", "resources": {"limits": {f"nvidia.com/mig-{profile}": 1}}},
        {"name": "plain", "image": "x"},
    ]
    assert admit(rules, init) == ([] if allowed else [fix])


@pytest.mark.parametrize("name", ["nvidia.com/mig-1g.10gb", "nvidia.com/mig-3g.71gbx"])
def test_a_profile_no_group_offers_is_refused(policy, name: str) -> None:
    rules, space = policy
    asked = copy.deepcopy(space)
    asked["spec"]["resources"]["requests"][name] = "1"
    assert admit(rules, asked) == [_message(rules, "MIG slices")]


@pytest.mark.parametrize(
    ("count", "admitted"), [("1", True), (1, True), ("1000m", True), ("2", False), (2, False)]
)
def test_whole_gpus_are_capped_at_max_gpus(policy, count: Any, admitted: bool) -> None:
    rules, space = policy
    asked = _with_resources(space, {GPU_RESOURCE: count})
    assert GPU_RESOURCE in asked["spec"]["resources"]["limits"]
    fix = _message(rules, "whole GPU")
    assert fix.startswith("Request at most 1 whole GPU ")
    assert admit(rules, asked) == ([] if admitted else [fix])


def test_mig_only_spaces_refuse_any_whole_gpu(h200_cluster: BusinessUnitConfig) -> None:
    d = _defaults(("1g.18gb",), max_gpus=0)
    rules = admission_policy(TEAM, TEMPLATES, d)
    space = _space(workspace_template(TEAM, "jupyterlab", TEMPLATES[0], d))
    fix = _message(rules, "whole GPUs")
    assert "Remove nvidia.com/gpu" in fix
    assert "nvidia.com/mig-<profile>" in fix
    assert admit(rules, _with_resources(space, {GPU_RESOURCE: "1"})) == [fix]
    assert admit(rules, space) == []


def test_a_cpu_only_bu_refuses_every_mig_resource() -> None:
    d = _defaults((), max_gpus=1)
    rules = admission_policy(TEAM, TEMPLATES, d)
    space = _space(workspace_template(TEAM, "jupyterlab", TEMPLATES[0], d))
    assert admit(rules, space) == []
    fix = _message(rules, "MIG slices")
    assert fix.startswith("Remove nvidia.com/mig-*")
    assert admit(rules, _with_resources(space, {"nvidia.com/mig-1g.18gb": "1"})) == [fix]


QUEUE_FIX = (
    "Set the label kueue.x-k8s.io/queue-name: hyperpod-ns-nlp-localqueue in metadata.labels: "
    "spaces in hyperpod-ns-nlp are queued by the task-governance quota of team nlp."
)
PRIORITY_FIX = (
    "Set the label kueue.x-k8s.io/priority-class: experimentation in metadata.labels, the "
    "priority class of the spaces of team nlp."
)
TEMPLATE_FIX = (
    "Create the space from a template of team nlp: set spec.templateRef.name to nlp-jupyterlab "
    "or nlp-code-editor and spec.templateRef.namespace to jupyter-k8s-system."
)


QUEUE, PRIORITY = "kueue.x-k8s.io/queue-name", "kueue.x-k8s.io/priority-class"


def _drop(*keys: str) -> Callable[[dict[str, Any]], None]:
    def change(space: dict[str, Any]) -> None:
        node = space
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return change


def _set(*keys: str, to: Any) -> Callable[[dict[str, Any]], None]:
    def change(space: dict[str, Any]) -> None:
        node = space
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = to

    return change


@pytest.mark.parametrize(
    ("change", "messages"),
    [
        (_drop("metadata", "labels"), [QUEUE_FIX, PRIORITY_FIX]),
        (_drop("metadata", "labels", QUEUE), [QUEUE_FIX]),
        (_set("metadata", "labels", QUEUE, to=OTHER.queue), [QUEUE_FIX]),
        (_drop("metadata", "labels", PRIORITY), [PRIORITY_FIX]),
        (_set("metadata", "labels", PRIORITY, to="inference"), [PRIORITY_FIX]),
        (_drop("spec", "templateRef"), [TEMPLATE_FIX]),
        (_drop("spec", "templateRef", "namespace"), [TEMPLATE_FIX]),
        (_set("spec", "templateRef", "name", to="vision-jupyterlab"), [TEMPLATE_FIX]),
        (_set("spec", "templateRef", "name", to="sagemaker-jupyter-template"), [TEMPLATE_FIX]),
        (_set("spec", "templateRef", "namespace", to="hyperpod-ns-nlp"), [TEMPLATE_FIX]),
    ],
)
def test_each_escape_from_the_team_is_refused_with_what_to_fix(
    policy, change: Callable[[dict[str, Any]], None], messages: list[str]
) -> None:
    """A space outside its team's queue or priority, or made without (or from another team's,
    or the add-on's own default) template, is refused, and only for that reason."""
    rules, space = policy
    change(space)
    assert admit(rules, space) == messages


def test_the_controller_and_stopped_spaces_are_not_held_to_it(policy) -> None:
    """The add-on's controller updates Workspaces (finalizers, an idle stop): a space made
    before the policy must stay stoppable and deletable. A stopped space holds no GPU; starting
    it is an UPDATE that is checked."""
    rules, space = policy
    del space["metadata"]["labels"]
    assert admit(rules, space) != []
    assert admit(rules, space, user=CONTROLLER_USER) == []
    stopped = copy.deepcopy(space)
    stopped["spec"]["desiredStatus"] = "Stopped"
    assert admit(rules, stopped) == []
    without_status = copy.deepcopy(space)
    del without_status["spec"]["desiredStatus"]
    assert admit(rules, without_status) == [QUEUE_FIX, PRIORITY_FIX]


def test_the_policy_and_binding_shape(policy) -> None:
    """admissionregistration.k8s.io/v1 (GA in Kubernetes 1.30; Kubernetes docs, "Validating
    Admission Policy"): CREATE and UPDATE of workspaces.workspace.jupyter.org/v1alpha1 in the
    team's namespace only (``kubernetes.io/metadata.name``, set on every namespace: Kubernetes
    docs, "Well-Known Labels, Annotations and Taints"), failing closed, bound with Deny."""
    rules, _ = policy
    binding = admission_binding(TEAM)
    assert rules["kind"] == "ValidatingAdmissionPolicy"
    assert binding["kind"] == "ValidatingAdmissionPolicyBinding"
    assert_denying_workspace_policy(rules, binding, "hyperpod-ns-nlp")
    spec = rules["spec"]
    for validation in spec["validations"]:
        parse(validation["expression"])
        assert "\n" not in validation["message"]  # the API refuses line breaks in a message
    for condition in spec["matchConditions"]:
        parse(condition["expression"])
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", condition["name"])


def test_cel_string_quotes_names_only() -> None:
    assert cel_string("kueue.x-k8s.io/queue-name") == "'kueue.x-k8s.io/queue-name'"
    for bad in ("it's", "a\\b", "", "two words"):
        with pytest.raises(ValueError, match="quotes into CEL"):
            cel_string(bad)


# ---------------------------------------------------------------------------------------------
# Idle shutdown in the templates.


def test_without_a_default_spaces_may_set_idle_shutdown_within_the_cap() -> None:
    assert idle_shutdown(None, 120) == {
        "idleShutdownOverrides": {"allow": True, "maxIdleTimeoutInMinutes": 120}
    }


def test_a_default_locks_idle_shutdown_on_within_one_minute_and_the_cap() -> None:
    """With ``allow: false`` a space must keep the template's idle shutdown and may only move
    its timeout within the bounds; locking needs ``defaultIdleShutdown`` (jupyter-k8s
    docs/source/concepts/templates/bounds.md; dive-deeper/webhooks/template-validation.md). The
    detection endpoint is SageMaker Distribution's (AWS docs, "Customize add-on": httpGet
    /api/idle on port 8888)."""
    d = _defaults(("1g.18gb",), idle_shutdown_default_minutes=60)
    spec = workspace_template(TEAM, "code-editor", TEMPLATES[1], d)["spec"]
    assert spec["defaultIdleShutdown"] == {
        "enabled": True,
        "idleTimeoutInMinutes": 60,
        "detection": {"httpGet": {"path": "/api/idle", "port": 8888}},
    }
    assert spec["idleShutdownOverrides"] == {
        "allow": False,
        "minIdleTimeoutInMinutes": 1,
        "maxIdleTimeoutInMinutes": 120,
    }
    plain = workspace_template(TEAM, "code-editor", TEMPLATES[1], _defaults(("1g.18gb",)))["spec"]
    assert "defaultIdleShutdown" not in plain


def test_synthesized_policies_admit_the_bus_own_spaces_only(synthesized) -> None:
    """On marketing's synthesized template: each team's policy admits a space made from its
    own template with its own labels, and refuses the same space labelled for another team."""
    config = synthesized.configs["marketing"]
    graph = TemplateGraph(synthesized.template("marketing", "hyperpod").to_json())
    objects = [
        o
        for r in graph.of_type("Custom::AWSCDK-EKS-KubernetesResource").values()
        for o in json.loads(TemplateGraph.render(r["Properties"]["Manifest"]))
    ]
    policies = {
        o["metadata"]["labels"]["platform/team"]: o
        for o in objects
        if o["kind"] == "ValidatingAdmissionPolicy"
    }
    templates = {o["metadata"]["name"]: o for o in objects if o["kind"] == "WorkspaceTemplate"}
    teams = {t.name: t for t in config.hyperpod.teams}
    spaces = config.hyperpod.spaces
    assert sorted(policies) == sorted(t.team for t in spaces.teams)
    for member in spaces.teams:
        team = teams[member.team]
        mine = SpacesTeam(
            name=team.name,
            namespace=team.namespace,
            queue=team.queue,
            priority_class=member.priority_class,
            user_role_arns=(),
        )
        for name in spaces.template_names_of(team.name):
            space = _space(templates[name], mine)
            assert admit(policies[team.name], space) == []
            foreign = [p for t, p in policies.items() if t != team.name]
            for other in foreign:
                assert admit(other, space) != []  # its namespace selector would skip it too
            mislabelled = copy.deepcopy(space)
            other_queue = next(t.queue for t in config.hyperpod.teams if t.name != team.name)
            mislabelled["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = other_queue
            assert len(admit(policies[team.name], mislabelled)) == 1
