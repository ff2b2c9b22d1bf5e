"""Where a HyperPod job can run: the BU's cluster as its config file describes it (teams, GPU
groups) and the instance type the job's node selector names, chosen so that type offers what the
job requests (whole GPUs, or its MIG profile's slices). A pair no node offers is refused here,
before anything is submitted, rather than left as a pod that never schedules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.accelerators import GPUS_PER_INSTANCE, MIG_PROFILES
from training.job.manifest import JobSpecError

if TYPE_CHECKING:
    from config.hyperpod import GpuGroup, HyperPod

DEFAULT_INSTANCE_TYPE = "ml.p5.48xlarge"  # whole GPUs without --bu: the recipes' node


def bu_cluster(bu: str) -> HyperPod:
    """The ``hyperpod`` section of ``config/<bu>.yaml``, validated as ``make validate`` does."""
    from config.loader import CONFIG_DIR, display_path, load_file

    path = CONFIG_DIR / f"{bu}.yaml"
    if not path.is_file():
        raise JobSpecError(f"--bu: no business unit {bu!r} here ({display_path(path)} is missing)")
    config, errors = load_file(path)
    if config is None:
        raise JobSpecError(f"--bu: {display_path(path)} is invalid: {errors[0]}")
    if config.hyperpod is None:
        raise JobSpecError(f"--bu: BU {bu!r} has no HyperPod cluster (no hyperpod section)")
    return config.hyperpod


def check_team(cluster: HyperPod, bu: str, team: str) -> None:
    """`team` must be one of the BU's task-governance teams."""
    teams = [t.name for t in cluster.teams]
    if team not in teams:
        raise JobSpecError(
            f"--team: {team!r} is not a team of BU {bu!r}; its teams: {', '.join(teams) or 'none'}"
        )


def _offers(mig_profile: str | None, groups: Sequence[GpuGroup] | None) -> dict[str, int]:
    """Instance type -> GPUs (or MIG slices of `mig_profile`) one node of it offers."""
    if groups is None:  # no BU: what each type can offer at all
        if mig_profile is None:
            return dict(GPUS_PER_INSTANCE)
        return {
            t: profiles[mig_profile].slices * GPUS_PER_INSTANCE[t]
            for t, profiles in MIG_PROFILES.items()
            if mig_profile in profiles
        }
    offers: dict[str, int] = {}
    for g in groups:
        per_gpu = g.slices_per_gpu()
        if mig_profile is None and not per_gpu:
            offers[g.instance_type] = GPUS_PER_INSTANCE[g.instance_type]
        elif mig_profile is not None and mig_profile in per_gpu:
            offers[g.instance_type] = per_gpu[mig_profile] * GPUS_PER_INSTANCE[g.instance_type]
    return offers


def _groups(groups: Sequence[GpuGroup]) -> str:
    return ", ".join(f"{g.name} ({g.instance_type}, {g.mig_label or 'whole GPUs'})" for g in groups)


def instance_type_for(
    *,
    instance_type: str | None,
    mig_profile: str | None,
    gpus_per_node: int,
    groups: Sequence[GpuGroup] | None = None,
    bu: str | None = None,
) -> str:
    """The instance type for the job's node selector (``""``: any type, as given).

    `instance_type` None derives it: from the BU's `groups` that offer the job's GPUs or MIG
    profile, or without a BU from the MIG table (`DEFAULT_INSTANCE_TYPE` for whole GPUs).
    Raises `JobSpecError` for a type that does not offer them, a profile nothing offers, a
    choice between types, or more GPUs (slices) per node than one node has.
    """
    if instance_type == "":
        return ""
    offers = _offers(mig_profile, groups)
    what = f"{mig_profile} MIG slices" if mig_profile else "whole GPUs"
    where = f"BU {bu!r}" if groups is not None and bu else "any instance type"
    if groups is not None:
        known = f"its GPU groups: {_groups(groups)}"
    else:
        known = f"types that have them: {', '.join(sorted(offers)) or 'none'}"
    if instance_type is None:
        if groups is None and mig_profile is None:
            instance_type = DEFAULT_INSTANCE_TYPE
        elif not offers:
            raise JobSpecError(f"mig_profile: no GPU group of {where} offers {what}; {known}")
        elif len(offers) > 1:
            raise JobSpecError(
                f"instance_type: {what} come on {', '.join(sorted(offers))}; pick one with "
                "--instance-type"
            )
        else:
            (instance_type,) = offers
    elif instance_type not in offers and (groups is not None or mig_profile is not None):
        field = "instance_type" if offers else "mig_profile"
        raise JobSpecError(f"{field}: {instance_type} offers no {what} in {where}; {known}")
    capacity = offers.get(instance_type)
    if capacity is not None and gpus_per_node > capacity:
        unit = "slices" if mig_profile else "GPUs"
        raise JobSpecError(
            f"gpus_per_node: {gpus_per_node} {unit} per node, but one {instance_type} node has "
            f"{capacity}"
        )
    return instance_type
