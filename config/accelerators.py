"""GPU facts per SageMaker instance type: GPUs per instance and the MIG profiles each offers.

One table for every consumer (the HyperPod schema's capacity arithmetic, endpoint MIG checks).
Profiles come from the HyperPod SDK's MIG table (see DESIGN.md); ``slices`` is how many
instances of that profile one GPU holds when the whole GPU uses it (NVIDIA's MIG user guide:
a ``1g`` profile with 1/8 of the memory fits 7 times, with 1/4 of the memory 4 times, ...).
"""

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class MigProfile:
    name: str  # "1g.18gb"
    compute: int  # compute slices of the 7 a GPU has ("1g" = 1)
    memory_eighths: int  # memory slices of the 8 a GPU has
    slices: int  # instances of this profile per GPU in an ``all-<name>`` layout


def _profiles(*rows: tuple[str, int, int, int]) -> MappingProxyType[str, MigProfile]:
    return MappingProxyType({name: MigProfile(name, c, m, n) for name, c, m, n in rows})


# (profile, compute slices, memory eighths, instances per GPU)
_A100_40 = _profiles(
    ("1g.5gb", 1, 1, 7),
    ("1g.10gb", 1, 2, 4),
    ("2g.10gb", 2, 2, 3),
    ("3g.20gb", 3, 4, 2),
    ("4g.20gb", 4, 4, 1),
    ("7g.40gb", 7, 8, 1),
)
_80GB = _profiles(  # A100 80 GB and H100 80 GB
    ("1g.10gb", 1, 1, 7),
    ("1g.20gb", 1, 2, 4),
    ("2g.20gb", 2, 2, 3),
    ("3g.40gb", 3, 4, 2),
    ("4g.40gb", 4, 4, 1),
    ("7g.80gb", 7, 8, 1),
)
_H200 = _profiles(
    ("1g.18gb", 1, 1, 7),
    ("1g.35gb", 1, 2, 4),
    ("2g.35gb", 2, 2, 3),
    ("3g.71gb", 3, 4, 2),
    ("4g.71gb", 4, 4, 1),
    ("7g.141gb", 7, 8, 1),
)
_B200 = _profiles(
    ("1g.23gb", 1, 1, 7),
    ("1g.45gb", 1, 2, 4),
    ("2g.45gb", 2, 2, 3),
    ("3g.90gb", 3, 4, 2),
    ("4g.90gb", 4, 4, 1),
    ("7g.180gb", 7, 8, 1),
)

# Instance type -> MIG profiles it offers (MIG-capable types only).
MIG_PROFILES: MappingProxyType[str, MappingProxyType[str, MigProfile]] = MappingProxyType(
    {
        "ml.p4d.24xlarge": _A100_40,
        "ml.p4de.24xlarge": _80GB,
        "ml.p5.48xlarge": _80GB,
        "ml.p5e.48xlarge": _H200,
        "ml.p5en.48xlarge": _H200,
        "ml.p6-b200.48xlarge": _B200,
    }
)

# Instance type -> NVIDIA GPUs per instance, for the GPU types HyperPod offers.
GPUS_PER_INSTANCE: MappingProxyType[str, int] = MappingProxyType(
    {
        **dict.fromkeys(MIG_PROFILES, 8),
        "ml.g5.xlarge": 1,
        "ml.g5.2xlarge": 1,
        "ml.g5.4xlarge": 1,
        "ml.g5.8xlarge": 1,
        "ml.g5.16xlarge": 1,
        "ml.g5.12xlarge": 4,
        "ml.g5.24xlarge": 4,
        "ml.g5.48xlarge": 8,
        "ml.g6.xlarge": 1,
        "ml.g6.2xlarge": 1,
        "ml.g6.4xlarge": 1,
        "ml.g6.8xlarge": 1,
        "ml.g6.16xlarge": 1,
        "ml.g6.12xlarge": 4,
        "ml.g6.24xlarge": 4,
        "ml.g6.48xlarge": 8,
        "ml.g6e.xlarge": 1,
        "ml.g6e.2xlarge": 1,
        "ml.g6e.4xlarge": 1,
        "ml.g6e.8xlarge": 1,
        "ml.g6e.16xlarge": 1,
        "ml.g6e.12xlarge": 4,
        "ml.g6e.24xlarge": 4,
        "ml.g6e.48xlarge": 8,
        "ml.p6-b300.48xlarge": 8,
    }
)


def mig_profiles(instance_type: str) -> MappingProxyType[str, MigProfile]:
    """The profiles ``instance_type`` offers; empty for a type without MIG."""
    return MIG_PROFILES.get(instance_type, MappingProxyType({}))
