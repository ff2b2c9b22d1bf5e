"""The AWS region a command talks to, and where that came from: one resolver for every CLI here.

The order is the pinned SDK's own (botocore 1.44, ``configprovider.py``: ``'region':
('region', 'AWS_DEFAULT_REGION', ...)``), after an explicit flag: the flag, then
``AWS_DEFAULT_REGION``, then the ``region`` of the active profile in the shared config file.
botocore 1.44 does not read ``AWS_REGION``, so neither does this; a user who set only that is
told so. Use::

    region = resolve_region(args.region)            # Region(name, source)
    print(region.describe(), file=sys.stderr)       # region us-east-1 (from AWS_DEFAULT_REGION)
    boto3.client("ssm", region_name=region.name)
"""

from __future__ import annotations

import os
from dataclasses import field
from typing import Any, NamedTuple

# The environment variables botocore 1.44 reads for the region, in its order.
REGION_VARIABLES = ("AWS_DEFAULT_REGION",)


class RegionNotSetError(RuntimeError):
    """No region from the flag, the environment or the profile; the message says how to set one."""


class Region(NamedTuple):
    """A resolved region: ``name`` (``us-east-1``) and ``source`` (``AWS_DEFAULT_REGION``)."""

    name: str
    source: str

    def describe(self) -> str:
        """``region us-east-1 (from AWS_DEFAULT_REGION)``: the line commands print."""
        return f"region {self.name} (from {self.source})"


def region_help(whose: str) -> str:
    """``--region``'s help in every command that resolves it here: the order it falls back in."""
    return f"{whose} region (default: {', '.join(REGION_VARIABLES)}, then your profile's)"


def region_option(whose: str) -> Any:
    """A ``--region`` field of a command's argument dataclass (`core.cli`), None until resolved."""
    return field(default=None, metadata={"help": region_help(whose)})


def resolve_region(explicit: str | None = None, *, flag: str = "--region") -> Region:
    """The region from ``explicit`` (reported as ``flag``), ``AWS_DEFAULT_REGION`` or the active
    profile's configured region (``AWS_PROFILE``, else ``default``), in that order.

    Raises `RegionNotSetError` when none is set, or the active profile does not exist.
    """
    if explicit:
        return Region(explicit, flag)
    for variable in REGION_VARIABLES:
        if value := os.environ.get(variable, "").strip():
            return Region(value, variable)
    import botocore.session
    from botocore.exceptions import ProfileNotFound

    session = botocore.session.Session()
    config_file = str(session.get_config_variable("config_file"))
    try:
        configured = session.get_scoped_config().get("region")
    except ProfileNotFound as err:
        raise RegionNotSetError(
            f"AWS profile {err.kwargs.get('profile')!r} is not in {config_file}: fix AWS_PROFILE, "
            f"or pass {flag} REGION"
        ) from None
    profile = session.profile or "default"
    if configured:
        return Region(str(configured), f"profile {profile} in {config_file}")
    ignored = os.environ.get("AWS_REGION")
    hint = (
        f"AWS_REGION={ignored} is set, but boto3 reads AWS_DEFAULT_REGION, not AWS_REGION; "
        if ignored
        else ""
    )
    example = ignored or "us-east-1"
    configure = "aws configure set region " + example
    if profile != "default":
        configure += f" --profile {profile}"
    raise RegionNotSetError(
        f"no AWS region set: {hint}pass {flag} {example}, or export AWS_DEFAULT_REGION={example}, "
        f"or set one for profile {profile} ({configure})"
    )
