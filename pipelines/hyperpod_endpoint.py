"""The deploy step for an endpoint the HyperPod inference operator serves: its
`InferenceEndpointConfig` re-applied with the candidate's model location, awaited, and rolled back
to the spec it replaced when the operator does not report the new one ready in time.

1. Read the live object (a fresh EKS client for each call, as the training sensor makes it:
   `pipelines.eks`, the execution role's token, no kubeconfig). Its spec is the previous spec.
2. Before any write to the cluster, put that spec in the run's record
   (``s3://<data bucket>/pipeline/<run>/deploy/previous.json``), with the time of the apply: a
   retried task reads both from there, so it neither re-applies nor loses what to roll back to,
   and its wait ends when the first try's would have.
3. PUT the same object with only ``spec.modelSourceConfig.modelLocation`` changed (checked
   against the operator's CRD schema first; the object's ``resourceVersion`` makes a
   concurrent change fail the PUT instead of being overwritten).
4. Poll until `inference.hyperpod.rollout` says the new generation is ready (the status fields
   it reads are listed there), for at most ``pipeline.deploy.ready_timeout_minutes`` after the
   apply. No smoke request: the SageMaker target sends none after its UpdateEndpoint either, and
   the registered SageMaker endpoint of a HyperPod-served model takes traffic only through the
   operator's load balancer, which this platform does not configure yet (README, endpoints 2b).
5. ``DeploymentFailed`` or the deadline: mark the record rolled back, PUT the previous spec, and
   fail naming the model that serves again. A retry that finds the candidate's spec still
   applied under a record marked rolled back finishes the rollback and fails the same way; a
   task cleared by hand after a rollback finds the previous spec and tries the candidate again,
   with a new deadline.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from pipelines.lifecycle import StepFailedError, read_s3_json, split_s3

if TYPE_CHECKING:
    from inference.hyperpod import Rollout

log = logging.getLogger(__name__)
POLL_S = 60.0  # a fresh client (DescribeCluster, new token) per poll, so not too often


@dataclass(frozen=True)
class EndpointObject:
    """Where the endpoint's InferenceEndpointConfig lives."""

    namespace: str
    name: str  # <bu>-<endpoint>: the object, its SageMaker endpoint and model name
    apply_command: str  # how the platform team applies it (named when it is missing)

    def __str__(self) -> str:
        return f"InferenceEndpointConfig {self.namespace}/{self.name}"


@dataclass(eq=False, repr=False)
class HyperPodEndpoint:
    """Champion read and deploy for one endpoint object. ``connect`` makes a CustomObjectsApi
    with a fresh token; ``s3`` writes and reads the run's record."""

    target: EndpointObject
    _: KW_ONLY
    connect: Callable[[], Any]
    s3: Any
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    poll_s: float = POLL_S

    # -- reading -------------------------------------------------------------------------------
    def _live(self) -> dict[str, Any] | None:
        from inference import hyperpod

        return hyperpod.read(self.connect(), self.target.namespace, self.target.name)

    def _location(self, obj: dict[str, Any]) -> tuple[str, str]:
        from inference import hyperpod

        try:
            return hyperpod.served_location(obj)
        except hyperpod.RenderError as err:
            raise StepFailedError(f"{self.target}: {err}") from err

    def served(self) -> str | None:
        """The model the object serves now (``s3://bucket/prefix/``); None when it does not
        exist yet (nothing to compare the candidate with, as before a SageMaker endpoint's
        first deploy)."""
        obj = self._live()
        if obj is None:
            return None
        bucket, prefix = self._location(obj)
        return f"s3://{bucket}/{prefix}"

    # -- the run's record ----------------------------------------------------------------------
    def _load(self, uri: str) -> dict[str, Any] | None:
        try:
            record: dict[str, Any] = read_s3_json(self.s3, uri)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise
        return record

    def _save(self, uri: str, record: dict[str, Any]) -> None:
        bucket, key = split_s3(uri)
        self.s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(record, indent=1, sort_keys=True).encode(),
            ContentType="application/json",
        )

    # -- deploying -----------------------------------------------------------------------------
    def deploy(self, candidate: str, record_uri: str, timeout_s: float) -> tuple[str, str]:
        """Serve ``candidate`` (an ``s3://`` prefix in the bucket the object reads); returns
        (the model now served, the model it replaced). Raises StepFailedError when it cannot,
        after re-applying the previous spec if the new one was applied."""
        record = self._apply(candidate, record_uri)
        deadline = float(record["applied_at"]) + timeout_s
        while True:
            state = self._rollout(candidate)
            if state.ready:
                return candidate, str(record["previous_model"])
            if state.failed:
                self._roll_back(record, record_uri, f"refused by the operator: {state.detail}")
            if self.clock() >= deadline:
                why = f"not ready within {round(timeout_s / 60)} minutes ({state.detail})"
                self._roll_back(record, record_uri, why)
            log.info("%s: waiting for the candidate's spec: %s", self.target, state.detail)
            self.sleep(self.poll_s)

    def _apply(self, candidate: str, record_uri: str) -> dict[str, Any]:
        """The run's record, after the candidate's spec is applied (by this try or an earlier)."""
        from inference import hyperpod

        target = self.target
        live = self._live()
        if live is None:
            raise StepFailedError(
                f"no {target} on the cluster: apply it once first ({target.apply_command})"
            )
        bucket, serving = self._location(live)
        candidate_bucket, candidate_prefix = split_s3(candidate)
        if candidate_bucket != bucket:
            raise StepFailedError(
                f"{target} serves from s3://{bucket}/; the candidate {candidate} is in another "
                "bucket, which its S3 mount cannot read"
            )
        if hyperpod.same_location(serving, candidate_prefix):
            record = self._load(record_uri)
            if record is None:
                raise StepFailedError(
                    f"{target} already serves {candidate}, but {record_uri} does not say what it "
                    "replaced, so it could not be rolled back: check the object by hand"
                )
            if record.get("rolled_back"):  # that try's rollback did not take: finish it
                self._roll_back(record, record_uri, str(record.get("why") or "rolled back"))
            log.info("%s already has the candidate's spec (an earlier try applied it)", target)
            return record
        # The previous spec is captured before anything is written to the cluster.
        record = {
            "object": f"{target.namespace}/{target.name}",
            "candidate": candidate,
            "previous_model": f"s3://{bucket}/{serving}",
            "previous_spec": live["spec"],
            "applied_at": self.clock(),
            "rolled_back": False,
        }
        manifest = hyperpod.with_model_location(live, candidate_prefix)
        problems = hyperpod.validate(manifest)
        if problems:  # a CRD change: never send what the operator would refuse
            raise StepFailedError(f"{target}: the new spec breaks the CRD: {problems[0]}")
        self._save(record_uri, record)
        self._put(manifest, f"nothing was applied; it still serves {record['previous_model']}")
        log.info("%s: applied %s (was %s)", target, candidate, record["previous_model"])
        return record

    def _rollout(self, candidate: str) -> Rollout:
        """The operator's progress on the candidate's spec (`inference.hyperpod.Rollout`)."""
        from inference import hyperpod

        obj = self._live()
        if obj is None:
            raise StepFailedError(f"{self.target} was deleted while the candidate rolled out")
        bucket, now_serving = self._location(obj)
        if not hyperpod.same_location(now_serving, split_s3(candidate)[1]):
            raise StepFailedError(
                f"{self.target} was changed by someone else while the candidate rolled out: it "
                f"now names s3://{bucket}/{now_serving}; left as it is"
            )
        return hyperpod.rollout(obj)

    def _put(self, manifest: dict[str, Any], unchanged: str) -> None:
        from kubernetes.client.exceptions import ApiException

        from inference import hyperpod

        try:
            hyperpod.replace(self.connect(), manifest)
        except ApiException as exc:
            if exc.status in {403, 404, 409, 422}:  # refused: nothing was written
                reason = " ".join(str(exc.reason or exc.status).split())
                message = f"{self.target}: PUT refused ({reason}); {unchanged}"
                raise StepFailedError(message) from exc
            raise

    def _roll_back(self, record: dict[str, Any], record_uri: str, why: str) -> None:
        """Re-apply the previous spec and fail the task naming what serves; never returns."""
        from inference import hyperpod

        target, previous = self.target, str(record["previous_model"])
        if not record.get("rolled_back"):
            self._save(record_uri, {**record, "rolled_back": True, "why": why})
        live = self._live()
        if live is None:
            raise StepFailedError(f"{target}: {why}; the object is gone, nothing to roll back")
        if hyperpod.same_location(self._location(live)[1], split_s3(previous)[1]):
            rolled = "it has the previous spec again"
        else:
            try:
                hyperpod.replace(self.connect(), hyperpod.with_spec(live, record["previous_spec"]))
            except Exception as exc:  # any failure here leaves the candidate's spec applied
                reason = " ".join(str(getattr(exc, "reason", None) or exc).split())
                raise StepFailedError(
                    f"{target}: {why}; re-applying the previous spec failed ({reason}), so it "
                    f"still has the candidate's spec: re-apply previous_spec from {record_uri} "
                    "by hand (pipelines/README.md, Roll back by hand)"
                ) from exc
            rolled = "re-applied the previous spec"
        raise StepFailedError(
            f"{target}: the candidate {record['candidate']} was {why}; {rolled}: it serves "
            f"{previous}"
        )
