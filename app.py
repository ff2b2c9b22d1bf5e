"""The CDK app: validate every BU config, then one Stage per BU (nothing else lives here).

``-c config_dir=DIR`` points at another config directory (the benchmark and tests use it).
"""

import sys
from pathlib import Path

import aws_cdk as cdk

from config.loader import CONFIG_DIR, config_files, load_all
from platform_constructs.gates import register_gates
from stacks.stage import BusinessUnitStage


def main() -> int:
    # CDK's built-in CloudFormation validation is off: cfn-lint checks every template in
    # `make synth` and the tests, and the built-in pass costs ~4 s per BU here (most of synth).
    app = cdk.App(builtin_cloud_formation_validation=False)
    config_dir = Path(app.node.try_get_context("config_dir") or CONFIG_DIR)
    loaded, errors = load_all(config_files(config_dir))
    if errors:
        for error in errors:
            print(error, file=sys.stderr)
        print(f"{len(errors)} config problem(s); nothing synthesized", file=sys.stderr)
        return 1
    register_gates(app)
    for item in loaded:
        BusinessUnitStage(app, config=item.config)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
