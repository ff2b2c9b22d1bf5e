"""The gates' verdict, read back from ``validation-report.json`` (which the cdk-nag packs and the
cfn-lint plugin write on every synth): ``app.py`` exits non-zero on it, ``make synth`` prints it
per BU, and the tests assert on it, so all three read the same gate the same way."""

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platform_constructs.gates import CFN_LINT_PLUGIN

REPORT_FILE = "validation-report.json"
# The report lists a plugin only when it found something. Every violation of a cdk-nag pack
# fails the gate; of cfn-lint, the `error` ones (its warnings are listed and counted).


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
    report_path = outdir / REPORT_FILE
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
