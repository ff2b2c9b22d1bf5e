"""``make synth``: validate every BU config, ``cdk synth`` offline, run the gates, print a summary.

Exits non-zero on a config problem, a failed synth, an unacknowledged validation finding
(cdk-nag packs or CDK's built-in CloudFormation validation) or a cfn-lint error. ``cdk synth``
itself exits 0 on validation failures from a Python app, hence the explicit report check.
"""

import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python scripts/synth.py` runs with scripts/ on the path

from config.loader import config_files, load_all  # noqa: E402
from scripts.gates import (  # noqa: E402
    LintResult,
    cfn_lint,
    stack_templates,
    validation_findings,
    validation_lines,
)

OUTDIR = ROOT / "cdk.out"


def main() -> int:
    _, errors = load_all(config_files())
    if errors:
        for error in errors:
            print(error, file=sys.stderr)
        return 1
    shutil.rmtree(OUTDIR, ignore_errors=True)  # no stale BU survives a rename
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    cdk = ROOT / "node_modules" / ".bin" / "cdk"
    synth = subprocess.run(
        [str(cdk), "synth", "--quiet", "--output", str(OUTDIR)], cwd=ROOT, env=env, check=False
    )
    if synth.returncode != 0:
        return synth.returncode
    findings = validation_findings(OUTDIR)
    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # stacks, resources, E, W
    lint_problems: list[str] = []
    for template in stack_templates(OUTDIR):
        result: LintResult = cfn_lint(template)
        row = rows[template.bu]
        row[0] += 1
        row[1] += template.resources()
        row[2] += len(result.errors)
        row[3] += len(result.warnings)
        lint_problems += result.errors + result.warnings

    header = ("BU", "stacks", "resources", "nag findings", "cfn-lint errors/warnings")
    table: list[tuple[str, ...]] = [header]
    table += [
        (bu, str(s), str(r), str(findings.get(bu, 0)), f"{e}/{w}")
        for bu, (s, r, e, w) in sorted(rows.items())
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))

    for problem in validation_lines(OUTDIR) + lint_problems:
        print(problem, file=sys.stderr)
    failed = sum(findings.values()) > 0 or any(row[2] for row in rows.values())
    packs = "cdk-nag AwsSolutions, HIPAA Security, NIST 800-53 r5; cfn-lint"
    print(f"gates: FAILED ({packs})" if failed else f"gates: passed ({packs})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
