"""The ``endpoints`` section of a BU config.

LMI inference endpoints on SageMaker or HyperPod (issue: endpoints).
"""

from config.base import StrictModel


class Endpoints(StrictModel):
    """Placeholder until its issue lands: an empty mapping is accepted."""
