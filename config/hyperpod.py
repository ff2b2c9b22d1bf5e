"""The ``hyperpod`` section of a BU config.

HyperPod cluster orchestrated by EKS: add-ons, instance groups, MIG, teams, FSx (issue: HyperPod).
"""

from config.base import StrictModel


class HyperPod(StrictModel):
    """Placeholder until its issue lands: an empty mapping is accepted."""

    def mig_profiles_offered(self) -> frozenset[str]:
        return frozenset()
