"""The CDK app: validate every BU config, then one Stage per BU (nothing else lives here).

The gates (cdk-nag packs, cfn-lint) run inside ``app.synth()``; when their report says failure
the app prints each finding once and exits 1 after writing it, so ``cdk synth``, ``cdk deploy``
and ``make synth`` all stop. (The CDK CLI asks the app to leave reporting to it, then reads the
report only for the stacks a command names: ``cdk synth`` of a Stage-only app names none, and a
failure inside a Python app only sets the exit code of jsii's node process, never ours.)

``-c config_dir=DIR`` points at another config directory (the benchmark and tests use it);
``-c bu=NAME[,NAME...]`` synthesizes only those BUs (``make synth BU=NAME``: a pull request
that changes one BU's file), after validating every file, cross-file rules included;
``-c lint_cache=DIR`` moves the cfn-lint result cache (default ``.cache/cfn-lint``); ``off``
lints every template afresh.
"""

import atexit
import os
import sys
import threading
from importlib import import_module
from pathlib import Path

_exit_code = 1  # what the process ends with, unless main() returns


def _end_before_teardown() -> None:
    """End the process once the other exit handlers have run, before the interpreter spends
    ~1 s freeing aws-cdk-lib's tens of thousands of generated classes. Registered before
    aws-cdk-lib is imported, so it runs last: atexit calls handlers last-registered-first, and
    jsii's node process and the lint workers register theirs later."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_code)


if __name__ == "__main__":  # never when a test imports the app
    atexit.register(_end_before_teardown)

# Two imports that need no jsii and take ~1 s together (the kubernetes client's models, the
# pydantic config schema) run on a thread while jsii loads aws-cdk-lib in node; the imports
# below wait for them only if they get there first.
threading.Thread(
    target=lambda: [import_module(name) for name in ("kubernetes.client", "config.loader")],
    name="preload",
    daemon=True,
).start()

import aws_cdk as cdk  # noqa: E402

from config.loader import CONFIG_DIR, config_files, load_all  # noqa: E402
from platform_constructs.gate_report import REPORT_FILE, gate_report  # noqa: E402
from platform_constructs.gates import register_gates  # noqa: E402
from stacks.stage import BusinessUnitStage  # noqa: E402

ROOT = Path(__file__).resolve().parent
FAIL_ON_VALIDATION = "@aws-cdk/core:failSynthOnValidationErrors"


def main() -> int:
    # CDK's built-in CloudFormation validation is off: the cfn-lint plugin that register_gates
    # adds checks every template on every synth (cdk synth/deploy, make synth, the tests), and
    # the built-in pass cost ~4 s per BU here on top.
    app = cdk.App(
        builtin_cloud_formation_validation=False,
        # The app reports a failed gate itself (below), in every mode: under the CLI, under
        # pytest (where CDK would raise instead) and as `python app.py`.
        post_cli_context={FAIL_ON_VALIDATION: False},
    )
    config_dir = Path(app.node.try_get_context("config_dir") or CONFIG_DIR)
    loaded, errors = load_all(config_files(config_dir))
    if errors:
        for error in errors:
            print(error, file=sys.stderr)
        print(f"{len(errors)} config problem(s); nothing synthesized", file=sys.stderr)
        return 1
    selected = _selected(app.node.try_get_context("bu"), [item.config.name for item in loaded])
    if isinstance(selected, str):
        print(selected, file=sys.stderr)
        return 1
    lint_cache = app.node.try_get_context("lint_cache") or str(ROOT / ".cache" / "cfn-lint")
    gates = register_gates(
        app, lint_cache=None if lint_cache == "off" else Path(lint_cache), early=True
    )
    for item in (i for i in loaded if i.config.name in selected):
        # Synthesizes this BU's stage now: its templates are linted while the next is built.
        gates.lint_early(BusinessUnitStage(app, config=item.config))
    assembly = app.synth()
    report = gate_report(Path(assembly.directory))
    if report.failed:
        for line in report.lines:
            print(line, file=sys.stderr)
        findings = sum(report.nag.values()) + sum(report.lint_errors.values())
        print(
            f"gates: FAILED, {findings} finding(s) above (full report: "
            f"{Path(assembly.directory) / REPORT_FILE}); nothing may be deployed",
            file=sys.stderr,
        )
        return 1
    return 0


def _selected(option: object, names: list[str]) -> set[str] | str:
    """The BUs ``-c bu=`` names (every BU without it), or the one line that says what is wrong."""
    if option is None or option == "":
        return set(names)
    wanted = [name.strip() for name in str(option).split(",") if name.strip()]
    unknown = [name for name in wanted if name not in names]
    if unknown or not wanted:
        return (
            f"-c bu={option}: no config for {', '.join(unknown) or 'an empty name'}; "
            f"known: {', '.join(sorted(names))}"
        )
    return set(wanted)


if __name__ == "__main__":
    _exit_code = main()
    sys.exit(_exit_code)
