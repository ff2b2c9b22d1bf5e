"""`s3://` inputs, staged to a node-local folder before the trainer opens them.

`data.path`, `data.eval_path` and `model.name_or_path` may be `s3://bucket/prefix/` URIs: the
prepared data a SageMaker Processing job wrote to the BU's data bucket, the base weights in the
models bucket. At setup one process per node (LOCAL_RANK 0) downloads every object under each
prefix into `data.staging_dir` (default `$TMPDIR/training-inputs`), keeping the keys' paths
relative to the prefix and skipping folder markers (keys ending in `/`); a URI that names one
object (`s3://bucket/data/train.jsonl`, no trailing slash, nothing under it as a prefix) stages
that file. The node's other ranks wait at a collective of the job's process group, which also
carries a failure to every rank, so no rank waits for a node that has already failed. The trainer
then opens the local copies; what it *records* (the config copy, MLflow params, the checkpoint's
settings, `data_path` and `base_model`) keeps the URIs, so a run resumed on another node, or with
another staging folder, compares equal.

One entry per URI under the staging root:

    <name>-<hash>/              the objects (or the one object), paths relative to the prefix
    <name>-<hash>.staged.json   the completion marker: the URI and every object's ETag and size

`<hash>` is of the URI (two prefixes never share a folder, and neither nests in the other). The
download goes to a temp folder renamed into place, and the marker is written after it, atomically.
A later run on the node (a restarted job, a resumed run) lists the prefix again and downloads
nothing when the listing equals the marker and every file is there with its size; any other
listing (new ETags, keys added or removed) is downloaded afresh.

Errors are `StagingError`, one line naming the URI: an empty or missing prefix, a missing bucket,
no credentials, access denied, too little disk space.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.config import TrainConfig
from training.loop import checkpoint, distributed

ROOT_NAME = "training-inputs"  # under $TMPDIR when data.staging_dir is empty
MARKER_SUFFIX = ".staged.json"


class StagingError(ValueError):
    """An `s3://` input that cannot be staged; the message is one line naming the URI."""


@dataclass(frozen=True)
class _Object:
    rel: str  # path under the entry folder
    key: str
    etag: str
    size: int


def staging_root(configured: str) -> Path:
    """`data.staging_dir`, or `$TMPDIR/training-inputs` when it is empty."""
    return Path(configured) if configured else Path(tempfile.gettempdir()) / ROOT_NAME


def _normalised(uri: str) -> str:
    bucket, prefix = checkpoint.split_s3(uri)
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def entry_dir(root: Path, uri: str) -> Path:
    """The folder `uri` is staged to: its last path component (readable) and a hash (unique)."""
    bucket, prefix = checkpoint.split_s3(uri)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", prefix.rsplit("/", 1)[-1] or bucket)
    digest = hashlib.sha256(_normalised(uri).encode()).hexdigest()[:12]
    return root / f"{name}-{digest}"


def _marker(entry: Path) -> Path:
    return entry.with_name(entry.name + MARKER_SUFFIX)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _relative(uri: str, key: str, rel: str) -> str:
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise StagingError(
            f"{uri}: object key {key!r} has an empty, '.' or '..' path segment; it cannot be "
            "staged to a folder"
        )
    return rel


def _listing(client: Any, uri: str) -> tuple[list[_Object], str]:
    """The objects to stage and the path of the input inside the entry ("" for a prefix)."""
    from botocore.exceptions import ClientError

    bucket, prefix = checkpoint.split_s3(uri)
    base = f"{prefix}/" if prefix else ""
    objects = [
        _Object(_relative(uri, o["Key"], o["Key"][len(base) :]), o["Key"], o["ETag"], o["Size"])
        for o in checkpoint.s3_objects(client, bucket, base)
        if not o["Key"].endswith("/")  # a "folder" the console or a sync tool created
    ]
    if objects:
        return objects, ""
    if prefix and not uri.endswith("/"):  # the URI may name one object (a JSONL file)
        try:
            head = client.head_object(Bucket=bucket, Key=prefix)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        else:
            name = _relative(uri, prefix, prefix.rsplit("/", 1)[-1])
            return [_Object(name, prefix, head["ETag"], head["ContentLength"])], name
    raise StagingError(
        f"{uri}: no objects under this prefix (a missing prefix, or only folder markers): check "
        "the URI (training.prepare's output holds manifest.json; a model folder config.json)"
    )


def _recorded(objects: list[_Object]) -> dict[str, dict[str, Any]]:
    return {o.rel: {"etag": o.etag, "size": o.size} for o in objects}


def _is_staged(entry: Path, uri: str, objects: list[_Object], path: str) -> bool:
    try:
        marker = json.loads(_marker(entry).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("uri") != _normalised(uri):
        return False
    if marker.get("path") != path or marker.get("objects") != _recorded(objects):
        return False
    return all((f := entry / o.rel).is_file() and f.stat().st_size == o.size for o in objects)


def _download(client: Any, uri: str, entry: Path, objects: list[_Object], path: str) -> None:
    bucket, _ = checkpoint.split_s3(uri)
    root = entry.parent
    root.mkdir(parents=True, exist_ok=True)
    # Whatever was there is stale: remove it first, marker before folder, so a kill from here on
    # leaves no marker that could vouch for a partial folder.
    _marker(entry).unlink(missing_ok=True)
    shutil.rmtree(entry, ignore_errors=True)
    for stale in root.glob(f".tmp-{entry.name}-*"):  # a download that was killed
        shutil.rmtree(stale, ignore_errors=True)
    need = sum(o.size for o in objects)
    free = shutil.disk_usage(root).free
    if need > free:
        raise StagingError(
            f"{uri}: {need / 1e9:.2f} GB to stage but {root} has {free / 1e9:.2f} GB free; set "
            "data.staging_dir to a bigger node-local disk (e.g. the instance's NVMe)"
        )
    tmp = root / f".tmp-{entry.name}-{os.getpid()}"
    tmp.mkdir()
    for o in objects:
        dest = tmp / o.rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, o.key, str(dest))
    os.replace(tmp, entry)
    marker = {"uri": _normalised(uri), "path": path, "objects": _recorded(objects)}
    part = root / f".{_marker(entry).name}.{os.getpid()}.tmp"
    part.write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(part, _marker(entry))


def stage(uri: str, root: Path) -> Path:
    """Download `uri` (a prefix, or one object) under `root` unless the marker shows it is
    already there; returns the local path to open. One process per node calls this."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    entry = entry_dir(root, uri)
    try:
        client = checkpoint.s3_client()
        objects, path = _listing(client, uri)
        if _is_staged(entry, uri, objects, path):
            print(f"inputs: {uri} already staged in {entry}", file=sys.stderr, flush=True)
            return entry / path if path else entry
        started = time.monotonic()
        _download(client, uri, entry, objects, path)
        print(
            f"inputs: staged {uri} to {entry} ({len(objects)} objects, "
            f"{sum(o.size for o in objects) / 1e6:.1f} MB, {time.monotonic() - started:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
    except NoCredentialsError:
        raise StagingError(
            f"{uri}: no AWS credentials (on the cluster: the job's service account or instance "
            "role; here: aws sso login, aws configure or AWS_PROFILE)"
        ) from None
    except ClientError as err:
        raise StagingError(_client_error(uri, err)) from None
    except BotoCoreError as err:
        raise StagingError(f"{uri}: {_one_line(err)}") from None
    except OSError as err:
        raise StagingError(f"{uri}: cannot stage to {entry}: {_one_line(err)}") from None
    return entry / path if path else entry


def _client_error(uri: str, err: Any) -> str:
    error = err.response.get("Error", {})
    code = str(error.get("Code", "?"))
    operation = getattr(err, "operation_name", "?")
    bucket, _ = checkpoint.split_s3(uri)
    if code == "NoSuchBucket":
        return f"{uri}: bucket {bucket!r} does not exist"
    if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
        return (
            f"{uri}: access denied ({operation}): the role needs s3:ListBucket on {bucket} and "
            "s3:GetObject on the prefix (and kms:Decrypt on the bucket's key)"
        )
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
        return f"{uri}: the AWS credentials were refused ({code}): sign in again"
    return f"{uri}: {operation} failed: {code}: {_one_line(error.get('Message', err))}"


def staged_path(uri: str, root: Path) -> Path:
    """The local path of an input `stage` has put under `root` (read from its marker)."""
    entry = entry_dir(root, uri)
    try:
        marker = json.loads(_marker(entry).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise StagingError(
            f"{uri}: no completion marker in {root} after staging; is data.staging_dir node-local "
            "(the same folder for every rank of a node)?"
        ) from None
    path = str(marker.get("path", ""))
    return entry / path if path else entry


def input_uris(config: TrainConfig) -> list[str]:
    """The config's inputs that are `s3://` URIs, each once."""
    values = (config.data.path, config.data.eval_path, config.model.name_or_path)
    return list(dict.fromkeys(v for v in values if checkpoint.is_s3(v)))


def stage_inputs(config: TrainConfig, world: distributed.World) -> TrainConfig:
    """`config` with every `s3://` input replaced by its node-local copy (`config` itself when
    it has none). Collective: every rank calls it; LOCAL_RANK 0 of each node downloads."""
    uris = input_uris(config)
    if not uris:
        return config
    root = staging_root(config.data.staging_dir)
    failure: BaseException | None = None
    message = ""
    if world.local_rank == 0:
        for uri in uris:
            try:
                stage(uri, root)
            except Exception as err:  # every rank must hear of it, or the others wait forever
                failure = err
                message = str(err) if isinstance(err, StagingError) else f"{uri}: {err!r}"
                break
    # The barrier: the node's other ranks wait here until its LOCAL_RANK 0 is done.
    messages = distributed.all_gather_object(message, world)
    if failure is not None:
        raise failure
    if failed := next((m for m in messages if m), ""):
        raise StagingError(failed)
    local = {uri: str(staged_path(uri, root)) for uri in uris}
    data = config.data.model_copy(
        update={
            "path": local.get(config.data.path, config.data.path),
            "eval_path": local.get(config.data.eval_path, config.data.eval_path),
        }
    )
    model = config.model.model_copy(
        update={"name_or_path": local.get(config.model.name_or_path, config.model.name_or_path)}
    )
    return config.model_copy(update={"data": data, "model": model})
