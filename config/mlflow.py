"""The ``mlflow`` section of a BU config.

Managed MLflow for the BU: a serverless MLflow App or a sized tracking server (issue: Studio).
"""

from typing import Annotated, Literal

from pydantic import model_validator

from core.base import FieldProblemError, StrictModel, matching

# What only a tracking server takes; an App is serverless and runs the version AWS picks.
_TRACKING_SERVER_ONLY = ("size", "mlflow_version")


class Mlflow(StrictModel):
    """Managed MLflow whose artifacts live in the BU's ``mlflow-artifacts`` bucket."""

    # `app`: AWS::SageMaker::MlflowApp, serverless, no size to pick, no idle cost.
    # `tracking_server`: AWS::SageMaker::MlflowTrackingServer, a sized server billed per hour.
    kind: Literal["app", "tracking_server"] = "app"
    # Tracking server only: Small (up to ~25 users), Medium (~50), Large (~100).
    size: Literal["Small", "Medium", "Large"] = "Small"
    # Tracking server only: the MLflow version it runs (the client should match it).
    mlflow_version: Annotated[str, matching(r"[0-9]+(\.[0-9]+)+", "an MLflow version like 3.0")] = (
        "3.0"
    )
    # Models logged to MLflow are registered in the SageMaker Model Registry as well.
    automatic_model_registration: bool = False
    # UTC weekly maintenance window start, e.g. "Sun:03:00".
    weekly_maintenance_window_start: (
        Annotated[
            str,
            matching(
                r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun):([01][0-9]|2[0-3]):[0-5][0-9]",
                "a weekly UTC start like Sun:03:00",
            ),
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _kind_fields(self) -> "Mlflow":
        server_only = sorted(set(_TRACKING_SERVER_ONLY) & self.model_fields_set)
        if self.kind == "app" and server_only:
            raise FieldProblemError(
                server_only[0], "only applies to kind 'tracking_server' (an App is serverless)"
            )
        return self
