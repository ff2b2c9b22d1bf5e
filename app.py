"""The CDK app: validate every BU config, then one Stage per BU (nothing else lives here).

``-c config_dir=DIR`` points at another config directory (the benchmark and tests use it);
``-c lint_cache=DIR`` moves the cfn-lint result cache (default ``.cache/cfn-lint``); ``off``
lints every template afresh.
"""

import sys
from pathlib import Path

import aws_cdk as cdk

from config.loader import CONFIG_DIR, config_files, load_all
from platform_constructs.gates import register_gates
from stacks.stage import BusinessUnitStage

ROOT = Path(__file__).resolve().parent


def main() -> int:
    # CDK's built-in CloudFormation validation is off: the cfn-lint plugin that register_gates
    # adds checks every template on every synth (cdk synth/deploy, make synth, the tests), and
    # the built-in pass cost ~4 s per BU here on top.
    app = cdk.App(builtin_cloud_formation_validation=False)
    config_dir = Path(app.node.try_get_context("config_dir") or CONFIG_DIR)
    loaded, errors = load_all(config_files(config_dir))
    if errors:
        for error in errors:
            print(error, file=sys.stderr)
        print(f"{len(errors)} config problem(s); nothing synthesized", file=sys.stderr)
        return 1
    lint_cache = app.node.try_get_context("lint_cache") or str(ROOT / ".cache" / "cfn-lint")
    register_gates(app, lint_cache=None if lint_cache == "off" else Path(lint_cache))
    for item in loaded:
        BusinessUnitStage(app, config=item.config)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
