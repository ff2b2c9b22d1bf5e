"""The training image's one entry point: it reads the launch contract from the environment.

    hyperpodrun|torchrun ... -m training.entrypoint train --config C [--set K=V]   (HyperPod)
    docker run IMAGE train                 (a SageMaker Training Job: SageMaker's own call)
    python -m training.entrypoint prepare ...   (a SageMaker Processing job's ContainerEntrypoint)
    python -m training.entrypoint train|prepare|evaluate|export ...   (anywhere else)

Contracts, checked in this order:
- ``launcher``: a torchrun-compatible agent started us (``TORCHELASTIC_RUN_ID``/``LOCAL_RANK``):
  run the command as given; the trainer reads RANK/WORLD_SIZE itself.
- ``sagemaker-training``: ``/opt/ml/input/config/hyperparameters.json`` exists. The config is
  the ``config_yaml`` hyperparameter (or ``config``, a path in the image); every other
  hyperparameter is a ``--set`` override. Channels (``SM_CHANNEL_<NAME>`` if set, else
  ``/opt/ml/input/data/<name>``) become ``data.path`` (train), ``data.eval_path`` (eval) and
  ``model.name_or_path`` (model); checkpoints go to ``/opt/ml/checkpoints`` (SageMaker syncs it
  with the job's CheckpointConfig, so a resubmitted run resumes); metrics to
  ``/opt/ml/output/data``; the merged model to ``/opt/ml/model``. Several instances or GPUs:
  one torchrun per host, rendezvous on the first host of ``resourceconfig.json``.
- ``sagemaker-processing``: ``/opt/ml/config/processingjobconfig.json`` exists: run the command
  (``prepare``) with its arguments, which the job request points at ``/opt/ml/processing``.
- ``local``: nothing of the above: run the command as given.
Failures under a SageMaker contract are also written to ``/opt/ml/output/failure``, which
SageMaker shows as the job's FailureReason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

OPT_ML = Path("/opt/ml")
RENDEZVOUS_PORT = 29500
CHANNEL_SETTINGS = {"train": "data.path", "eval": "data.eval_path", "model": "model.name_or_path"}


def _commands() -> dict[str, Callable[[list[str]], int]]:
    from training import evaluate, export, prepare, train

    return {
        "train": train.cli,
        "prepare": prepare.cli,
        "evaluate": evaluate.cli,
        "export": export.cli,
    }


def detect(environ: Mapping[str, str], opt_ml: Path = OPT_ML) -> str:
    """The launch contract this process runs under (see the module docstring)."""
    if "TORCHELASTIC_RUN_ID" in environ or "LOCAL_RANK" in environ:
        return "launcher"
    if (opt_ml / "input" / "config" / "hyperparameters.json").is_file():
        return "sagemaker-training"
    if (opt_ml / "config" / "processingjobconfig.json").is_file():
        return "sagemaker-processing"
    return "local"


def _channels(environ: Mapping[str, str], opt_ml: Path) -> dict[str, Path]:
    found = {}
    for name in CHANNEL_SETTINGS:
        path = Path(environ.get(f"SM_CHANNEL_{name.upper()}", opt_ml / "input" / "data" / name))
        if path.is_dir():
            found[name] = path
    return found


def training_arguments(
    environ: Mapping[str, str], opt_ml: Path, workdir: Path
) -> tuple[list[str], Path]:
    """``training.train`` arguments under the SageMaker contract, and the checkpoint dir."""
    config_dir = opt_ml / "input" / "config"
    hps: dict[str, str] = json.loads((config_dir / "hyperparameters.json").read_text("utf-8"))
    config_yaml, config_path = hps.pop("config_yaml", None), hps.pop("config", None)
    if config_yaml:
        config_file = workdir / "config.yaml"
        config_file.write_text(config_yaml, encoding="utf-8")
    elif config_path:
        config_file = Path(config_path)
    else:
        raise ValueError("hyperparameters: give config_yaml (the YAML) or config (a path)")
    channels = _channels(environ, opt_ml)
    if "train" not in channels:
        raise ValueError("no 'train' channel: the job needs the prepared data as channel train")
    checkpoints = opt_ml / "checkpoints"
    output = Path(environ.get("SM_OUTPUT_DATA_DIR", opt_ml / "output" / "data"))
    overrides = [f"{key}={value}" for key, value in hps.items()]
    overrides += [f"{CHANNEL_SETTINGS[name]}={path}" for name, path in channels.items()]
    overrides += [f"checkpoint.dir={checkpoints}", f"output_dir={output}"]
    argv = ["--config", str(config_file)]
    for item in overrides:
        argv += ["--set", item]
    return argv, checkpoints


def _hosts(environ: Mapping[str, str], opt_ml: Path) -> tuple[list[str], str]:
    resource = opt_ml / "input" / "config" / "resourceconfig.json"
    if resource.is_file():
        info = json.loads(resource.read_text("utf-8"))
        return list(info["hosts"]), str(info["current_host"])
    hosts = json.loads(environ.get("SM_HOSTS", '["algo-1"]'))
    return hosts, environ.get("SM_CURRENT_HOST", hosts[0])


def _gpus(environ: Mapping[str, str]) -> int:
    if "SM_NUM_GPUS" in environ:
        return int(environ["SM_NUM_GPUS"])
    import torch

    return torch.cuda.device_count()


def torchrun_command(
    hosts: Sequence[str], current: str, gpus: int, train_argv: Sequence[str]
) -> list[str]:
    """One torchrun per instance; host 0 runs the rendezvous (static, like SageMaker's own)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={len(hosts)}",
        f"--node-rank={list(hosts).index(current)}",
        f"--nproc-per-node={gpus}",
        f"--master-addr={hosts[0]}",
        f"--master-port={RENDEZVOUS_PORT}",
        "-m",
        "training.entrypoint",
        "train",
        *train_argv,
    ]


def sagemaker_training(environ: Mapping[str, str], opt_ml: Path) -> int:
    from training import export, train
    from training.loop import checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        argv, checkpoints = training_arguments(environ, opt_ml, Path(tmp))
        hosts, current = _hosts(environ, opt_ml)
        gpus = _gpus(environ)
        if len(hosts) > 1 or gpus > 1:
            code = subprocess.call(torchrun_command(hosts, current, gpus, argv))
            if code:
                return code
        else:
            train.main(train.parse_args(argv))
    if current != hosts[0]:
        return 0
    latest = checkpoint.latest(str(checkpoints))
    if latest is None:
        raise RuntimeError(f"training finished without a checkpoint in {checkpoints}")
    model_dir = environ.get("SM_MODEL_DIR", str(opt_ml / "model"))
    result = export.main(latest, model_dir)  # SageMaker uploads it as model.tar.gz
    print(json.dumps({"exported": result.output, "step": result.step}))
    return 0


def _write_failure(opt_ml: Path, error: BaseException) -> None:
    failure = opt_ml / "output" / "failure"
    try:
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(f"{type(error).__name__}: {error}"[:1024], encoding="utf-8")
    except OSError:
        pass  # the traceback on stderr still reaches CloudWatch


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    opt_ml: Path = OPT_ML,
) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    contract = detect(env, opt_ml)
    commands = _commands()
    if contract == "sagemaker-training":
        # SageMaker runs `docker run IMAGE train`: the arguments carry nothing else.
        try:
            return sagemaker_training(env, opt_ml)
        except Exception as error:
            _write_failure(opt_ml, error)
            raise
    if not args or args[0] not in commands:
        print(f"usage: {' | '.join(commands)} [ARGS...] (contract: {contract})", file=sys.stderr)
        return 2
    command, rest = args[0], args[1:]
    try:
        return commands[command](rest)
    except Exception as error:
        if contract == "sagemaker-processing":
            _write_failure(opt_ml, error)
        raise


if __name__ == "__main__":
    raise SystemExit(main())
