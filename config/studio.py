"""The ``studio`` section of a BU config.

SageMaker Studio domain: Identity Center sign-in, spaces, execution roles (issue: Studio).
"""

from config.base import StrictModel


class Studio(StrictModel):
    """Placeholder until its issue lands: an empty mapping is accepted."""
