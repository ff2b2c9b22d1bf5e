"""Every user-facing command's --help: its usage line says how to run it, its description is a
whole first paragraph (not a sentence cut at a line break), and no option claims a default of
None."""

import importlib

import pytest

from core.cli import summary

# Every `python -m` command: each module's `parse_args(argv)` builds its typed arguments.
COMMANDS = [
    "config.__main__",
    "inference.hyperpod.__main__",
    "inference.parsing.__main__",
    "inference.serving",
    "inference.smoke",
    "tools.doctor",
    "scripts.mwaa_bundle",
    "scripts.push_training_image",
    "tools.render_dashboard",
    "scripts.replacements",
    "scripts.stage_hyperpod_chart",
    "scripts.synth",
    "scripts.synth_scope",
    "training.bfcl",
    "training.bfcl_data",
    "training.evaluate",
    "training.export",
    "training.job.cli",
    "training.prepare",
    "training.synthetic",
    "training.tiny",
    "training.train",
]


@pytest.mark.parametrize("module", COMMANDS)
def test_help_names_the_command_and_ends_its_sentences(
    module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    mod = importlib.import_module(module)
    with pytest.raises(SystemExit) as done:
        mod.parse_args(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    command = module.removesuffix(".cli").removesuffix(".__main__")
    assert out.startswith(f"usage: python -m {command} ")
    description = summary(mod.__doc__)
    assert description[-1] in ".?)`", f"{module}: first paragraph ends mid-sentence: {description}"
    assert " ".join(description.split()[:6]) in " ".join(out.split())
    assert "(default: None)" not in out


def test_every_option_of_synthetic_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    from training.synthetic import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, words in [
        ("--output OUTPUT", "JSONL file to write"),
        ("--n N", "number of conversations"),
        ("--seed SEED", "same seed, same data"),
        ("--mean-tokens MEAN_TOKENS", "target mean rendered length"),
        ("--max-tools MAX_TOOLS", "most tools one conversation offers"),
    ]:
        assert f"{flag} {words}" in text


def test_train_help_lists_every_key_set_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    from training.config import TrainConfig, settable_keys
    from training.train import cli

    with pytest.raises(SystemExit):
        cli(["--help"])
    out = capsys.readouterr().out
    listed = [line.strip().split(" ", 1)[0] for line in out.split("accepts", 1)[1].splitlines()[1:]]
    assert {"optim.lr", "checkpoint.resume", "seed"} <= set(listed)
    assert "  optim.lr (" in out
    assert "model.name_or_path (required)" in out
    # every listed key really is one --set takes (the schema's nested sections included)
    assert listed == [line.split(" ", 1)[0] for line in settable_keys()]
    assert {key.split(".")[0] for key in listed} == set(TrainConfig.model_fields)
