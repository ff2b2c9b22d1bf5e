"""``make synth``: validate every BU config, ``cdk synth`` offline, read the gates, print a summary.

``cdk synth`` itself runs every gate (the cdk-nag packs and cfn-lint are policy-validation
plugins, ``platform_constructs.gates``) and exits 1 on an unacknowledged nag finding or a cfn-lint
error; this script adds the config check up front and the per-BU table from the gates' report.
"""

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python scripts/synth.py` runs with scripts/ on the path

from config.loader import config_files, load_all  # noqa: E402
from core import cli  # noqa: E402
from platform_constructs.gate_report import gate_report  # noqa: E402
from scripts.gates import stack_templates  # noqa: E402

OUTDIR = ROOT / "cdk.out"
PACKS = "cdk-nag AwsSolutions, HIPAA Security, NIST 800-53 r5; cfn-lint"


@dataclass(frozen=True)
class SynthArgs:
    bu: str = field(
        default="",
        metadata={"help": "synthesize only these BUs (comma-separated); all are validated"},
    )


parse_args = cli.args_parser(SynthArgs, __doc__, module="scripts.synth")


def main(args: SynthArgs) -> int:
    loaded, errors = load_all(config_files())
    if errors:
        for error in errors:
            print(error, file=sys.stderr)
        return 1
    names = sorted(item.config.name for item in loaded)
    wanted = [n.strip() for n in args.bu.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        print(f"synth: BU={args.bu}: no config/{unknown[0]}.yaml; known: {', '.join(names)}")
        return 2
    which = f"synthesizing {', '.join(wanted)}" if wanted else "cdk synth"
    print(
        f"synth: {len(names)} BU config(s) valid; {which} with the gates "
        "(under a minute for three BUs on 2 cores) ...",
        flush=True,
    )
    started = time.monotonic()
    shutil.rmtree(OUTDIR, ignore_errors=True)  # no stale BU survives a rename
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    cdk = ROOT / "node_modules" / ".bin" / "cdk"
    synth = subprocess.run(
        [
            str(cdk),
            "synth",
            "--quiet",
            "--output",
            str(OUTDIR),
            *(["-c", f"bu={args.bu}"] if wanted else []),
        ],
        cwd=ROOT,
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,  # "Successfully synthesized ...": the table below says more
        stderr=subprocess.PIPE,  # the findings are read from the report below instead
        text=True,
    )
    if not (OUTDIR / "validation-report.json").exists():
        sys.stderr.write(synth.stderr)  # the app failed before the gates ran: say why
        return synth.returncode or 1
    report = gate_report(OUTDIR)
    print(f"synth: done in {time.monotonic() - started:.0f} s", flush=True)
    stacks: Counter[str] = Counter()
    resources: Counter[str] = Counter()
    for template in stack_templates(OUTDIR):
        stacks[template.bu] += 1
        resources[template.bu] += template.resources()

    header = ("BU", "stacks", "resources", "nag findings", "cfn-lint errors/warnings")
    table: list[tuple[str, ...]] = [header]
    table += [
        (
            bu,
            str(stacks[bu]),
            str(resources[bu]),
            str(report.nag[bu]),
            f"{report.lint_errors[bu]}/{report.lint_warnings[bu]}",
        )
        for bu in sorted(stacks)
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())

    for finding in report.lines:
        print(finding, file=sys.stderr)
    failed = report.failed or synth.returncode != 0
    print(f"gates: FAILED ({PACKS})" if failed else f"gates: passed ({PACKS})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
