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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python scripts/synth_scope.py BASE_REF", file=sys.stderr)
        return 2
    diff = subprocess.run(
        ["git", "diff", "--name-only", f"{args[0]}...HEAD"],
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
    sys.exit(main())
