"""One App for the whole session: every example BU plus one cloned by ``config new``,
synthesized once; templates, nag reports and the cloud assembly are shared by the tiers that
read synthesized templates (tests/stacks, tests/deploy_contract). A pytest plugin (tests/conftest.py
loads it), so every tier gets the same session fixture."""

import shutil
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from harness.cdk_context import cdk_json_context

from config.__main__ import main as config_cli
from config.__main__ import parse_args as config_args
from config.loader import CONFIG_DIR, config_files, load_valid
from config.schema import BusinessUnitConfig
from platform_constructs.gates import PACKS, CfnLintPlugin, register_gates
from stacks.stage import BusinessUnitStage

CLONED_BU = "risk"
# The example BUs and the clone `config new` writes of fraud: every stack test runs on each.
EXAMPLE_BUS = ("fraud", "credit", "marketing", CLONED_BU)


@dataclass
class SynthesizedApp:
    app: cdk.App
    outdir: Path
    configs: dict[str, BusinessUnitConfig]
    stages: dict[str, BusinessUnitStage]
    templates: dict[tuple[str, str], Template]  # (bu, stack id: "network", "security", ...)
    nag: dict[str, cdk.PolicyValidationPluginReport]  # pack class name -> report
    lint: CfnLintPlugin  # the cfn-lint gate that ran in app.synth(); .results per template

    def template(self, bu: str, unit: str) -> Template:
        return self.templates[(bu, unit)]


@pytest.fixture(scope="session")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example configs plus a BU written by `config new`, with no edits."""
    directory = tmp_path_factory.mktemp("config")
    for path in config_files(CONFIG_DIR):
        shutil.copy(path, directory / path.name)
    args = config_args(["new", CLONED_BU, "--from", "fraud", "--config-dir", str(directory)])
    assert config_cli(args) == 0
    return directory


@pytest.fixture(scope="session")
def synthesized(config_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> SynthesizedApp:
    outdir = tmp_path_factory.mktemp("cdk.out")
    # As app.py builds it: gates registered (cfn-lint among them, so app.synth() lints every
    # template once, uncached), CDK's slow built-in validation off.
    app = cdk.App(
        context=cdk_json_context(), outdir=str(outdir), builtin_cloud_formation_validation=False
    )
    lint = register_gates(app)
    configs = {c.name: c for c in load_valid(config_files(config_dir))}
    stages = {name: BusinessUnitStage(app, config=cfg) for name, cfg in configs.items()}
    nag = {pack.__name__: pack().validate_scope(app) for pack in PACKS}
    app.synth()
    templates = {
        (name, stack.node.id): Template.from_stack(stack)
        for name, stage in stages.items()
        for stack in stage.node.children
        if isinstance(stack, cdk.Stack)
    }
    return SynthesizedApp(app, outdir, configs, stages, templates, nag, lint)
