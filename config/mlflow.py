"""The ``mlflow`` section of a BU config.

Managed MLflow for the BU: serverless app or tracking server (issue: Studio + MLflow).
"""

from config.base import StrictModel


class Mlflow(StrictModel):
    """Placeholder until its issue lands: an empty mapping is accepted."""
