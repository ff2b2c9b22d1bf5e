"""GPU facts per SageMaker instance type: GPUs per instance, memory per GPU, the MIG profiles each
offers, and whether it has local NVMe instance storage.

The one table for every consumer: the HyperPod schema's capacity arithmetic and MIG checks
(``config.hyperpod``), the endpoint MIG check (``config.endpoints``), the serving config's
tensor-parallel and memory checks (``inference.serving``) and job placement
(``training.job``). GPU counts and memory per GPU are the EC2 instance type guide's
("Specifications for Amazon EC2 accelerated computing instances", Accelerators and Accelerator
memory columns). MIG profiles come from the HyperPod SDK's MIG table (see DESIGN.md); ``slices``
is how many instances of that profile one GPU holds when the whole GPU uses it (NVIDIA's MIG
user guide: a ``1g`` profile with 1/8 of the memory fits 7 times, with 1/4 of the memory 4
times, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from core.base import ascii_pattern

INSTANCE_PREFIX = "ml."  # SageMaker's instance types are the EC2 ones with this prefix
# How NVIDIA names a MIG profile ("3g.40gb"), for ``fullmatch`` (see ``ascii_pattern``).
MIG_PROFILE = ascii_pattern(r"[1-7]g\.[0-9]+gb")


@dataclass(frozen=True)
class MigProfile:
    name: str  # "1g.18gb"
    compute: int  # compute slices of the 7 a GPU has ("1g" = 1)
    memory_eighths: int  # memory slices of the 8 a GPU has
    slices: int  # instances of this profile per GPU in an ``all-<name>`` layout


_NO_MIG: MappingProxyType[str, MigProfile] = MappingProxyType({})


@dataclass(frozen=True)
class GpuShape:
    """The accelerators of one instance type: count and memory per GPU, and its MIG profiles."""

    gpus: int
    gpu_memory_gib: int
    gpu: str
    mig: MappingProxyType[str, MigProfile] = field(default_factory=lambda: _NO_MIG)
    # Local NVMe instance storage, encrypted by the instance's hardware module; SageMaker then
    # refuses a KmsKeyId for the endpoint volume. Every type below has it.
    instance_storage: bool = True


# NVIDIA's six MIG profiles of a GPU, smallest first: (compute slices of 7, memory slices of 8,
# instances per GPU in an ``all-<profile>`` layout).
_SHAPES = ((1, 1, 7), (1, 2, 4), (2, 2, 3), (3, 4, 2), (4, 4, 1), (7, 8, 1))


def _profiles(*memory_gb: int) -> MappingProxyType[str, MigProfile]:
    """The six profiles of one GPU model, given the memory NVIDIA names each with."""
    return MappingProxyType(
        {
            f"{compute}g.{gb}gb": MigProfile(f"{compute}g.{gb}gb", compute, eighths, per_gpu)
            for (compute, eighths, per_gpu), gb in zip(_SHAPES, memory_gb, strict=True)
        }
    )


_A100_40 = _profiles(5, 10, 10, 20, 20, 40)
_80GB = _profiles(10, 20, 20, 40, 40, 80)  # A100 80 GB and H100 80 GB
_H200 = _profiles(18, 35, 35, 71, 71, 141)
_B200 = _profiles(23, 45, 45, 90, 90, 180)


def _family(prefix: str, sizes: dict[str, int], memory: int, gpu: str) -> dict[str, GpuShape]:
    return {f"{INSTANCE_PREFIX}{prefix}.{s}": GpuShape(n, memory, gpu) for s, n in sizes.items()}


_SINGLE = {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1}
_MULTI = {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8}
# Instance type -> its GPUs, for the NVIDIA GPU types HyperPod and SageMaker hosting offer.
# Memory per GPU: the GPU's nominal size (A10G and L4 24, L40S 48), else the guide's GiB figure.
INSTANCE_GPUS: MappingProxyType[str, GpuShape] = MappingProxyType(
    {
        **_family("g5", _SINGLE | _MULTI, 24, "A10G"),
        **_family("g6", _SINGLE | _MULTI, 24, "L4"),
        **_family("g6e", _SINGLE | _MULTI, 48, "L40S"),
        "ml.p4d.24xlarge": GpuShape(8, 40, "A100", _A100_40),
        "ml.p4de.24xlarge": GpuShape(8, 80, "A100", _80GB),
        "ml.p5.48xlarge": GpuShape(8, 80, "H100", _80GB),
        "ml.p5e.48xlarge": GpuShape(8, 141, "H200", _H200),
        "ml.p5en.48xlarge": GpuShape(8, 141, "H200", _H200),
        "ml.p6-b200.48xlarge": GpuShape(8, 179, "B200", _B200),  # 1432 GiB (8 x 179 GiB)
        "ml.p6-b300.48xlarge": GpuShape(8, 268, "B300"),  # 2148 GiB (8 x 268 GiB)
    }
)

# Views of the table for the callers that need one column.
GPUS_PER_INSTANCE: MappingProxyType[str, int] = MappingProxyType(
    {name: shape.gpus for name, shape in INSTANCE_GPUS.items()}
)
# Instance type -> MIG profiles it offers (MIG-capable types only).
MIG_PROFILES: MappingProxyType[str, MappingProxyType[str, MigProfile]] = MappingProxyType(
    {name: shape.mig for name, shape in INSTANCE_GPUS.items() if shape.mig}
)


def mig_profiles(instance_type: str) -> MappingProxyType[str, MigProfile]:
    """The profiles ``instance_type`` offers; empty for a type without MIG."""
    shape = INSTANCE_GPUS.get(instance_type)
    return _NO_MIG if shape is None else shape.mig


def mig_memory_gib(profile: str) -> int:
    """GPU memory of a MIG slice, as NVIDIA names the profile: ``3g.40gb`` -> 40."""
    return int(profile.rsplit(".", 1)[1].removesuffix("gb"))


def ml_instance_type(name: str) -> str:
    """``g5.2xlarge`` as SageMaker names it (``ml.g5.2xlarge``); an ``ml.`` name unchanged."""
    return name if name.startswith(INSTANCE_PREFIX) else f"{INSTANCE_PREFIX}{name}"
