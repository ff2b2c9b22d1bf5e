"""Read a synthesized cloud assembly: its stacks, the cdk-nag report, and cfn-lint over each
template. Shared by ``make synth`` and the test suite so both apply the same gate."""

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cfnlint.api import lint

# The report lists a plugin only when it found something; every listed violation fails the
# gate, whether from a cdk-nag pack or from CDK's built-in CloudFormation validation.


@dataclass(frozen=True)
class StackTemplate:
    bu: str
    name: str
    region: str
    path: Path

    def resources(self) -> int:
        return len(json.loads(self.path.read_text(encoding="utf-8")).get("Resources", {}))


@dataclass
class LintResult:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)


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


def cfn_lint(template: StackTemplate) -> LintResult:
    """cfn-lint against the CloudFormation schemas of the stack's own region."""
    result = LintResult()
    for match in lint(template.path.read_text(encoding="utf-8"), regions=[template.region]):
        line = f"{template.path.name}: {match.rule.id} {match.message}"
        {"E": result.errors, "W": result.warnings}.get(match.rule.id[0], result.infos).append(line)
    return result


def validation_findings(outdir: Path) -> Counter[str]:
    """Unacknowledged findings per BU from every plugin of ``validation-report.json``."""
    report_path = outdir / "validation-report.json"
    per_bu: Counter[str] = Counter()
    if not report_path.exists():
        return per_bu
    report = json.loads(report_path.read_text(encoding="utf-8"))
    for plugin in report["pluginReports"]:
        for violation in plugin["violations"]:
            for construct in violation["violatingConstructs"]:
                per_bu[construct["constructPath"].split("/", 1)[0]] += 1
    return per_bu


def validation_lines(outdir: Path) -> list[str]:
    """One line per unacknowledged finding: plugin, rule, construct path."""
    report_path = outdir / "validation-report.json"
    if not report_path.exists():
        return []
    report = json.loads(report_path.read_text(encoding="utf-8"))
    return [
        f"{plugin['pluginName']}: {v['ruleName']} at {c['constructPath']}"
        for plugin in report["pluginReports"]
        for v in plugin["violations"]
        for c in v["violatingConstructs"]
    ]
