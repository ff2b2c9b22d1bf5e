"""`s3://` inputs: staged once per node, trained on like local paths, recorded as URIs.

Against moto (in-process; a moto server for the two-process test): the tiny model and the packed
fixture data uploaded to buckets, `training.train` on `s3://` paths.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import moto
import pytest

from training import export, train
from training.config import dump_config
from training.loop import checkpoint, inputs

REPO = Path(__file__).resolve().parents[2]
DATA = "s3://data/prepared/tools-v1/"
MODEL = "s3://models/base/tiny-qwen3"
AWS_ENV = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing"}  # fmt: skip


def _upload(client: Any, folder: Path, uri: str) -> None:
    bucket, prefix = checkpoint.split_s3(uri)
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.upload_file(str(f), bucket, f"{prefix}/{f.relative_to(folder).as_posix()}")


@pytest.fixture
def s3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, packed_dir: Path
) -> Iterator[Any]:
    """Buckets `data` and `models` holding the fixture data and model, as the Processing job and
    the platform team leave them (a console folder marker and a nested object included); the
    default staging root ($TMPDIR) is under tmp_path."""
    import boto3

    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmpdir"))
    (tmp_path / "tmpdir").mkdir()
    with moto.mock_aws():
        client = boto3.client("s3")
        for bucket in ("data", "models"):
            client.create_bucket(Bucket=bucket)
        _upload(client, packed_dir, DATA)
        client.put_object(Bucket="data", Key="prepared/tools-v1/", Body=b"")  # folder marker
        client.put_object(Bucket="data", Key="prepared/tools-v1/notes/README.txt", Body=b"hi")
        _upload(client, tiny_model_dir, MODEL)
        yield client


@pytest.fixture
def s3_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """S3 operations the trainer's client makes, by name (GetObject, ListObjectsV2, ...)."""
    calls: Counter[str] = Counter()
    real = checkpoint.s3_client

    def counting() -> Any:
        client = real()
        client.meta.events.register(
            "before-call.s3.*", lambda model, **_: calls.update([model.name])
        )
        return client

    monkeypatch.setattr(checkpoint, "s3_client", counting)
    return calls


def _on_s3(tiny_config: Any, staging: Path, **overrides: Any) -> Any:
    """The fixture config reading its data and model from the buckets, staged to `staging`."""
    paths = {"data__path": DATA, "model__name_or_path": MODEL, "data__staging_dir": str(staging)}
    return tiny_config(**{**paths, **overrides})


def _state(ckpt: str | None) -> dict[str, Any]:
    assert ckpt is not None
    return json.loads((Path(ckpt) / checkpoint.STATE).read_text())


def test_s3_inputs_train_as_the_local_paths_do_and_are_staged_once(
    s3: Any,
    s3_calls: Counter[str],
    tiny_config: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    local = train.main(tiny_config(output_dir="local", max_steps=3))
    staging = tmp_path / "node-local"
    remote_cfg = _on_s3(tiny_config, staging, output_dir="remote", max_steps=3)
    remote = train.main(remote_cfg)
    assert remote.losses == local.losses
    assert s3_calls["GetObject"] > 0

    # Staged: every object at its relative path, folder markers skipped, one marker per URI.
    entry = inputs.entry_dir(staging, DATA)
    assert (entry / "manifest.json").is_file()
    assert (entry / "notes" / "README.txt").read_text() == "hi"
    marker = json.loads((staging / f"{entry.name}{inputs.MARKER_SUFFIX}").read_text())
    assert marker["uri"] == DATA.rstrip("/")
    assert "" not in marker["objects"]
    assert "manifest.json" in marker["objects"]
    assert (inputs.entry_dir(staging, MODEL) / "config.json").is_file()

    # Recorded: the URIs the user configured, never the node-local copies.
    state = _state(remote.checkpoint_path)
    assert state["data_path"] == DATA
    assert state["base_model"] == MODEL
    assert state["settings"]["model.name_or_path"] == MODEL
    assert state["data_fingerprint"] == _state(local.checkpoint_path)["data_fingerprint"]
    written = (Path(remote_cfg.output_dir) / "config.yaml").read_text()
    assert DATA in written
    assert str(entry) not in written

    # A second run on the node lists the prefixes again and downloads nothing.
    s3_calls.clear()
    capsys.readouterr()
    again = train.main(_on_s3(tiny_config, staging, output_dir="again", max_steps=3))
    assert again.losses == local.losses
    assert s3_calls["GetObject"] == 0
    assert s3_calls["HeadObject"] == 0
    assert s3_calls["ListObjectsV2"] == 2
    assert f"inputs: {DATA} already staged in {entry}" in capsys.readouterr().err


def test_an_s3_input_run_resumes_on_another_node_and_exports(
    s3: Any, tiny_config: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def config(node: str) -> Any:
        return _on_s3(
            tiny_config, tmp_path / node, output_dir="run", max_steps=4, deterministic=True,
            checkpoint__every_n_steps=2, checkpoint__keep_last=5,
        )  # fmt: skip

    full = train.main(config("node-a"))
    shutil.rmtree(Path(full.output_dir) / "checkpoints" / "step-000004")
    capsys.readouterr()
    # Another node: another staging folder and local paths, the same URIs and content.
    resumed = train.main(config("node-b"))
    err = capsys.readouterr().err
    assert "(step 2 of 4)" in err
    assert "resuming from" in err
    assert resumed.steps == 4
    assert resumed.losses == pytest.approx(full.losses, rel=1e-9, abs=0)

    # The checkpoint records the base model as its URI; export stages it ($TMPDIR here).
    exported = export.main(str(resumed.checkpoint_path), str(tmp_path / "export"))
    assert (Path(exported.local_dir) / "model.safetensors").is_file()
    assert (inputs.staging_root("") / inputs.entry_dir(Path(), MODEL).name).is_dir()


def test_a_missing_prefix_is_one_line_naming_it(
    s3: Any, tiny_config: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = "s3://data/prepared/tools-v2/"
    path = tmp_path / "missing.yaml"
    path.write_text(dump_config(tiny_config(data__path=missing)))
    capsys.readouterr()
    assert train.cli(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"train failed: {missing}: no objects under this prefix")
    assert err.count("\n") == 1

    with pytest.raises(inputs.StagingError, match="bucket 'nope' does not exist"):
        inputs.stage("s3://nope/prepared/", tmp_path / "staging")


def test_no_credentials_is_one_line(
    tiny_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # no credentials cached by earlier tests
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    nowhere = str(tmp_path / "no-such-file")
    for key, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": nowhere,
                       "AWS_SHARED_CREDENTIALS_FILE": nowhere,
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    path = tmp_path / "creds.yaml"
    path.write_text(dump_config(tiny_config(data__path=DATA, data__staging_dir=str(tmp_path))))
    capsys.readouterr()
    assert train.cli(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"train failed: {DATA}: no AWS credentials")
    assert err.count("\n") == 1


def test_staging_follows_the_listing(s3: Any, s3_calls: Counter[str], tmp_path: Path) -> None:
    root = tmp_path / "staging"
    s3.put_object(Bucket="data", Key="raw/train.jsonl", Body=b'{"text": "a"}\n')
    # A URI naming one object stages that file.
    staged = inputs.stage("s3://data/raw/train.jsonl", root)
    assert staged.name == "train.jsonl"
    assert staged.read_bytes() == b'{"text": "a"}\n'
    assert inputs.staged_path("s3://data/raw/train.jsonl", root) == staged
    # A changed object (new ETag) is downloaded again; an unchanged listing is not.
    s3.put_object(Bucket="data", Key="raw/train.jsonl", Body=b'{"text": "b"}\n')
    s3_calls.clear()
    assert inputs.stage("s3://data/raw/train.jsonl", root).read_bytes() == b'{"text": "b"}\n'
    assert s3_calls["GetObject"] == 1
    s3_calls.clear()
    inputs.stage("s3://data/raw/train.jsonl", root)
    assert s3_calls["GetObject"] == 0
    # A file deleted from the staged copy is noticed.
    staged.unlink()
    assert inputs.stage("s3://data/raw/train.jsonl", root).is_file()
    # A key that would escape the staging folder is refused.
    s3.put_object(Bucket="data", Key="evil/a/../../../x", Body=b"")
    with pytest.raises(inputs.StagingError, match=r"'\.\.' path segment"):
        inputs.stage("s3://data/evil/", root)


_RANK_SCRIPT = """
import json, sys
from collections import Counter
from pathlib import Path

import boto3

from training.config import load_config
from training.loop import distributed, inputs

calls = Counter()
boto3.setup_default_session()
boto3.DEFAULT_SESSION.events.register(
    "before-call.s3.*", lambda model, **_: calls.update([model.name])
)
world = distributed.init("cpu")
try:
    staged = inputs.stage_inputs(load_config(sys.argv[1]), world)
    out = {"data": staged.data.path, "model": staged.model.name_or_path}
except inputs.StagingError as err:
    out = {"error": str(err)}
out["calls"] = dict(calls)
Path(sys.argv[2], f"rank{world.rank}.json").write_text(json.dumps(out))
distributed.cleanup()
"""


def test_one_process_per_node_downloads_and_a_failure_reaches_every_rank(
    tiny_config: Any, tiny_model_dir: Path, packed_dir: Path, tmp_path: Path
) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {**os.environ, **AWS_ENV, "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}",
               "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}  # fmt: skip
        client = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL_S3"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        for bucket in ("data", "models"):
            client.create_bucket(Bucket=bucket)
        _upload(client, packed_dir, DATA)
        _upload(client, tiny_model_dir, MODEL)
        script = tmp_path / "stage.py"
        script.write_text(_RANK_SCRIPT)

        def run(data: str, out: Path) -> list[dict[str, Any]]:
            cfg = tmp_path / f"{out.name}.yaml"
            cfg.write_text(dump_config(_on_s3(tiny_config, tmp_path / "staging", data__path=data)))
            out.mkdir()
            proc = subprocess.run(
                [sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc-per-node", "2", str(script), str(cfg), str(out)],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-4000:]
            return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]

        ok = run(DATA, tmp_path / "ok")
        assert ok[0]["data"] == ok[1]["data"] == str(inputs.entry_dir(tmp_path / "staging", DATA))
        assert ok[0]["model"] == ok[1]["model"]
        assert ok[0]["calls"]["GetObject"] > 0
        assert ok[1]["calls"] == {}  # LOCAL_RANK 1 waited and touched no S3 at all

        failed = run("s3://data/prepared/none/", tmp_path / "failed")
        assert "s3://data/prepared/none/: no objects under this prefix" in failed[0]["error"]
        assert failed[1]["error"] == failed[0]["error"]  # told, not left waiting
    finally:
        server.stop()
