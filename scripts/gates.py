"""Read a synthesized cloud assembly: its stacks and the gates' report (``validation-report.json``,
which the cdk-nag packs and the cfn-lint plugin write on every synth). Shared by ``make synth``
and the test suite so both read the same gate."""

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platform_constructs.gates import CFN_LINT_PLUGIN

# The report lists a plugin only when it found something. Every violation of a cdk-nag pack
# fails the gate; of cfn-lint, the `error` ones (its warnings are listed and counted).


@dataclass(frozen=True)
class StackTemplate:
    bu: str
    name: str
    region: str
    path: Path

    def resources(self) -> int:
        return len(json.loads(self.path.read_text(encoding="utf-8")).get("Resources", {}))


@dataclass
class GateReport:
    """Per BU (the first segment of a construct path): nag findings, cfn-lint errors/warnings."""

    nag: Counter[str] = field(default_factory=Counter)
    lint_errors: Counter[str] = field(default_factory=Counter)
    lint_warnings: Counter[str] = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return sum(self.nag.values()) + sum(self.lint_errors.values()) > 0


def stack_templates(outdir: Path) -> list[StackTemplate]:
    """Every stack template of every BU stage (nested assemblies ``assembly-<bu>``)."""
    out = []
    manifest = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))
    for artifact in manifest["artifacts"].values():
        if artifact["type"] != "cdk:cloud-assembly":
            continue
        props = artifact["properties"]
        nested = outdir / props["directoryName"]
        inner = json.loads((nested / "manifest.json").read_text(encoding="utf-8"))
        for stack in inner["artifacts"].values():
            if stack["type"] != "aws:cloudformation:stack":
                continue
            region = stack["environment"].rsplit("/", 1)[-1]
            out.append(
                StackTemplate(
                    bu=props["displayName"],
                    name=stack["properties"].get("stackName", stack["displayName"]),
                    region=region,
                    path=nested / stack["properties"]["templateFile"],
                )
            )
    return out


def _where(construct: dict[str, Any]) -> tuple[str, str]:
    """(BU, readable location) of one violating construct."""
    path = construct.get("constructPath")
    resource = construct.get("cloudFormationResource") or {}
    if path:
        return path.split("/", 1)[0], path
    # A finding outside any resource (e.g. template-level): name the template file.
    template = str(resource.get("templatePath", "?"))
    bu = template.split("/", 1)[0].removeprefix("assembly-") if "/" in template else "?"
    return bu, template


def gate_report(outdir: Path) -> GateReport:
    """Unacknowledged findings of every plugin of ``validation-report.json``."""
    report = GateReport()
    report_path = outdir / "validation-report.json"
    if not report_path.exists():
        return report
    raw = json.loads(report_path.read_text(encoding="utf-8"))
    for plugin in raw["pluginReports"]:
        name = plugin["pluginName"]
        for violation in plugin["violations"]:
            severity = violation.get("severity", "error")
            for construct in violation["violatingConstructs"]:
                bu, where = _where(construct)
                if name != CFN_LINT_PLUGIN:
                    report.nag[bu] += 1
                elif severity == "warning":
                    report.lint_warnings[bu] += 1
                else:
                    report.lint_errors[bu] += 1
                line = f"{name}: {violation['ruleName']} at {where}"
                if name == CFN_LINT_PLUGIN:
                    line += f" ({severity}: {violation.get('description', '')})"
                report.lines.append(line)
    return report


def validation_lines(outdir: Path) -> list[str]:
    """One line per unacknowledged finding: plugin, rule, construct path."""
    return gate_report(outdir).lines
