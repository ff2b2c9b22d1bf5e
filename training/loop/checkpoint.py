"""Atomic, resumable checkpoints on a local/FSx path or S3.

Layout of one checkpoint, `ROOT/step-000123/`:
  model.safetensors   trainable weights (adapters only for LoRA, everything for full FT)
  optimizer.pt        optimizer state (full, gathered on rank 0)
  scheduler.pt        LR scheduler state
  rng.pt              python/numpy/torch/cuda RNG state of every rank
  trainer_state.json  step, data position, settings and data fingerprints, MLflow run id
                      (written last)

A checkpoint may come from shared storage or S3, so loading it must never run code: weights are
safetensors, and the `.pt` files hold only tensors, numbers, strings and containers, read with
`torch.load(weights_only=True)` and nothing added to its allowlist (the numpy RNG state is stored
as a list of ints for that reason). A file carrying any other pickled object is refused
(`UnsafeCheckpointError`), and an unreadable one too (`CheckpointError`): one line naming the
file, which `train`, `export` and `evaluate` print instead of a traceback.

It is written under `ROOT/.tmp-step-000123/` and renamed into place, so a reader never sees a
half-written checkpoint; a kill mid-write leaves only a temp directory, cleaned on the next save.
For `s3://bucket/prefix` the checkpoint is staged locally the same way and uploaded with
`trainer_state.json` last, which is the marker `latest()` looks for.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.file_modes import honour_umask

STATE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step-(\d{6,})$")


def step_name(step: int) -> str:
    return f"step-{step:06d}"


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b/` -> (`bucket`, `a/b`): the prefix without leading or trailing slashes."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def s3_client() -> Any:
    """The one S3 client factory of the trainer (checkpoints, staged inputs)."""
    import boto3

    return boto3.client("s3")


def s3_objects(client: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Every object (`Key`, `Size`, `ETag`, ...) whose key starts with `prefix`, all pages."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def rng_state() -> dict[str, Any]:
    """Every generator's state in types `torch.load(weights_only=True)` accepts."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"] = {
        "key": numpy_state["state"]["key"].tolist(),
        "pos": int(numpy_state["state"]["pos"]),
    }
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": numpy_state,
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {
        "key": np.asarray(numpy_state["state"]["key"], dtype=np.uint32),
        "pos": numpy_state["state"]["pos"],
    }
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Checkpoint:
    """A loaded checkpoint (tensors on CPU)."""

    path: str
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: list[dict[str, Any]]
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])


def save(
    root: str,
    *,
    step: int,
    weights: dict[str, torch.Tensor],
    optimizer: dict[str, Any],
    scheduler: dict[str, Any],
    rng: list[dict[str, Any]],
    state: dict[str, Any],
    keep_last: int,
    staging: Path,
) -> str:
    """Write checkpoint `step` atomically under `root`; prune to the newest `keep_last`."""
    from safetensors.torch import save_file

    local_root = staging if is_s3(root) else Path(root)
    local_root.mkdir(parents=True, exist_ok=True)
    for stale in local_root.glob(".tmp-step-*"):
        shutil.rmtree(stale, ignore_errors=True)
    name = step_name(step)
    tmp = local_root / f".tmp-{name}"
    tmp.mkdir()
    save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp / "model.safetensors"))
    torch.save(optimizer, tmp / "optimizer.pt")
    torch.save(scheduler, tmp / "scheduler.pt")
    torch.save(rng, tmp / "rng.pt")
    honour_umask(tmp)
    (tmp / STATE).write_text(json.dumps({**state, "step": step}, indent=2), encoding="utf-8")
    final = local_root / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    if is_s3(root):
        bucket, prefix = split_s3(root)
        client = s3_client()
        files = sorted(final.iterdir(), key=lambda f: f.name == STATE)  # marker last
        for f in files:
            client.upload_file(str(f), bucket, "/".join(x for x in (prefix, name, f.name) if x))
        _prune_s3(client, bucket, prefix, keep_last)
        _prune_local(local_root, 1)
        return f"s3://{bucket}/{prefix + '/' if prefix else ''}{name}"
    _prune_local(local_root, keep_last)
    return str(final)


def _steps_local(root: Path) -> list[int]:
    if not root.is_dir():
        return []
    return sorted(
        int(m.group(1))
        for d in root.iterdir()
        if (m := _STEP_DIR.match(d.name)) and (d / STATE).is_file()
    )


def _prune_local(root: Path, keep_last: int) -> None:
    for step in _steps_local(root)[:-keep_last]:
        shutil.rmtree(root / step_name(step), ignore_errors=True)


def _steps_s3(client: Any, bucket: str, prefix: str) -> list[int]:
    steps = []
    base = f"{prefix}/" if prefix else ""
    for obj in s3_objects(client, bucket, base):
        parts = obj["Key"][len(base) :].split("/")
        if len(parts) == 2 and parts[1] == STATE and (m := _STEP_DIR.match(parts[0])):
            steps.append(int(m.group(1)))
    return sorted(steps)


def _prune_s3(client: Any, bucket: str, prefix: str, keep_last: int) -> None:
    base = f"{prefix}/" if prefix else ""
    for step in _steps_s3(client, bucket, prefix)[:-keep_last]:
        keys = [{"Key": o["Key"]} for o in s3_objects(client, bucket, f"{base}{step_name(step)}/")]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})


def latest(root: str) -> str | None:
    """The newest complete checkpoint under `root` (local path or s3 URI), or None."""
    if is_s3(root):
        bucket, prefix = split_s3(root)
        steps = _steps_s3(s3_client(), bucket, prefix)
        if not steps:
            return None
        return f"s3://{bucket}/{prefix + '/' if prefix else ''}{step_name(steps[-1])}"
    steps = _steps_local(Path(root))
    return str(Path(root) / step_name(steps[-1])) if steps else None


def _materialise(path: str, staging: Path) -> Path:
    if not is_s3(path):
        return Path(path)
    bucket, key = split_s3(path)
    local = staging / "download" / Path(key).name
    if local.exists():
        shutil.rmtree(local)
    local.mkdir(parents=True)
    client = s3_client()
    for obj in s3_objects(client, bucket, key + "/"):
        client.download_file(bucket, obj["Key"], str(local / Path(obj["Key"]).name))
    return local


class CheckpointError(ValueError):
    """A checkpoint or model folder that cannot be loaded; the message is one line naming the
    file, for the commands to print instead of a traceback."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint file holds a pickled object that is not plain data: it is never unpickled."""


def _refusal(path: Path | str, err: Exception) -> UnsafeCheckpointError:
    # torch names what it would have imported ("Trying to load unsupported GLOBAL posix.mkdir
    # whose module posix is blocked."): the one line of its long message worth repeating.
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = next((line for line in lines if "GLOBAL" in line), lines[0] if lines else "")
    return UnsafeCheckpointError(
        f"{path}: refused: it holds a pickled object other than tensors and plain containers, "
        f"which loading would execute (a tampered or foreign checkpoint?): "
        f"{detail or type(err).__name__}"
    )


def _load_data(path: Path) -> Any:
    """Tensors and plain containers only; anything else (a callable, a class) is refused."""
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        raise _refusal(path, e) from None
    except (RuntimeError, EOFError) as e:  # truncated or not a torch file at all
        raise CheckpointError(f"{path}: not a readable torch file: {_first_line(e)}") from None


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except SafetensorError as e:
        raise CheckpointError(
            f"{path}: not a readable safetensors file: {_first_line(e)}"
        ) from None


def _load_state(local: Path, path: str) -> dict[str, Any]:
    file = local / STATE
    if not file.is_file():
        raise FileNotFoundError(f"{path}: not a complete checkpoint (no {STATE})")
    try:
        state = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{file}: not a JSON trainer state: {e}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{file}: not a JSON object")
    return state


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@contextmanager
def refusing_pickles(folder: str | Path) -> Iterator[None]:
    """Around a Hugging Face ``from_pretrained`` of `folder`: its refusal of a pickled weight file
    (``torch.load(weights_only=True)``) becomes one `UnsafeCheckpointError` naming the file."""
    try:
        yield
    except pickle.UnpicklingError as e:
        pickles = sorted(p for p in Path(folder).glob("*") if p.suffix in _PICKLE_SUFFIXES)
        raise _refusal(", ".join(map(str, pickles)) or folder, e) from None


_PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".ckpt"})


def load(path: str, *, staging: Path) -> Checkpoint:
    """Everything `train` resumes from. Raises `CheckpointError` (one line naming the file) for
    a file that is unsafe or unreadable, `FileNotFoundError` for an incomplete checkpoint."""
    local = _materialise(path, staging)
    state = _load_state(local, path)
    return Checkpoint(
        path=path,
        weights=_load_weights(local / "model.safetensors"),
        optimizer=_load_data(local / "optimizer.pt"),
        scheduler=_load_data(local / "scheduler.pt"),
        rng=_load_data(local / "rng.pt"),
        state=state,
    )


def read_weights(path: str, *, staging: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Only the weights and trainer state (what export needs); errors as `load`'s."""
    local = _materialise(path, staging)
    state = _load_state(local, path)
    return _load_weights(local / "model.safetensors"), state
