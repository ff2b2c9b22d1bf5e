"""Which BUs a pull request's synth must build: `make synth BU=$(python scripts/synth_scope.py
origin/main)` in the PR workflow.

A change that touches only `config/<bu>.yaml` files synthesizes those BUs (the app still
validates every config file, cross-file rules included); any other change (code, constraints,
a deleted BU file) prints nothing, which synthesizes every BU.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The PR workflow runs `python3 scripts/synth_scope.py` outside the venv: only the stdlib and
# core.cli (stdlib-only) are imported.
sys.path.insert(0, str(ROOT))

from core import cli  # noqa: E402

_BU_FILE = re.compile(r"config/(?P<bu>[a-z][a-z0-9-]*)\.yaml")


def scope(changed: Iterable[str], existing: Iterable[str]) -> list[str]:
    """The BUs to synthesize, or [] for all: only when every change is an existing BU's file."""
    present = set(existing)
    names: list[str] = []
    for path in changed:
        match = _BU_FILE.fullmatch(path)
        if match is None or match["bu"] not in present:
            return []
        names.append(match["bu"])
    return sorted(set(names))


@dataclass(frozen=True)
class ScopeArgs:
    base: str = field(metadata={"positional": True, "help": "the PR's base ref (origin/main)"})


parse_args = cli.args_parser(ScopeArgs, __doc__, module="scripts.synth_scope")


def main(args: ScopeArgs) -> int:
    diff = subprocess.run(
        ["git", "diff", "--name-only", f"{args.base}...HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if diff.returncode != 0:  # no base (a push, a shallow clone): synthesize everything
        print(f"synth scope: {diff.stderr.strip()}; every BU", file=sys.stderr)
        return 0
    existing = [p.stem for p in (ROOT / "config").glob("*.yaml")]
    print(",".join(scope(diff.stdout.split(), existing)))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
