"""The typed schema every ``config/<bu>.yaml`` is validated against (pydantic v2).

Defaults that suit most business units live here, so a BU file holds only what differs.
Models are frozen and reject unknown fields: a typo is an error, never a silent default.
"""

import ipaddress
from typing import Annotated, Literal

from pydantic import (
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from config.endpoints import Endpoints
from config.governance import Governance
from config.hyperpod import HyperPod
from config.mlflow import Mlflow
from config.pipeline import Pipeline
from config.regions import AVAILABILITY_ZONES, HYPERPOD_REGIONS, MISSING_HYPERPOD_TYPES
from config.studio import Studio
from core.base import FieldProblemError, StrictModel, ascii_pattern, matching, one_of
from core.naming import BU_TAG_KEY, Naming

__all__ = ["BusinessUnitConfig", "FieldProblemError", "PlatformSettings"]

# BU names feed S3 bucket names and DNS labels: lowercase letters, digits, single hyphens.
BU_NAME = ascii_pattern(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
ACCOUNT_ID = ascii_pattern(r"[0-9]{12}")
# What AWS accepts in tag keys and values across services: letters and numbers of any script
# (`\p{L}\p{N}`), spaces (not tabs or newlines) and these symbols.
_TAG_SYMBOLS = frozenset(" _.:/=+-@")


def _tag_text(value: str) -> bool:
    return all(ch.isalnum() or ch in _TAG_SYMBOLS for ch in value)


# The smallest private subnet we allow: EKS pods and HyperPod ENIs each take a VPC address.
MIN_PRIVATE_SUBNET_ADDRESSES = 1024  # a /22
SMALLEST_VPC_PREFIX, LARGEST_VPC_PREFIX = 16, 24  # AWS VPC CIDR limits
# The ranges a BU's VPC may use: RFC 1918 only. `ipaddress.is_private` also admits loopback,
# link-local, benchmarking (198.18.0.0/15) and documentation ranges, none of which a VPC can
# route. 100.64.0.0/10 (RFC 6598 shared space) is left out on purpose: it is the range EKS
# custom networking adds as a secondary CIDR for pod IPs, so the primary stays clear of it.
VPC_RANGES = tuple(
    ipaddress.IPv4Network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)


TagValue = Annotated[str, StringConstraints(min_length=1, max_length=256)]
# CloudFormation takes at most 50 tags on a resource (E3032 in cfn-lint). The Stage puts the BU's
# tags (the three below, `extra`, and `business-unit`) on every resource, and a resource may
# carry up to RESOURCE_OWN_TAGS of its own (a subnet: Name, aws-cdk:subnet-name,
# aws-cdk:subnet-type, kubernetes.io/role/internal-elb); tests/stacks checks that bound on every
# synthesized resource, so a CDK upgrade that adds one fails a test, not a deploy.
MAX_TAGS_PER_RESOURCE = 50
RESOURCE_OWN_TAGS = 4


class Tags(StrictModel):
    """Cost-allocation tags put on every resource of the BU (owner and cost centre required)."""

    owner: TagValue
    cost_center: TagValue
    environment: TagValue = "prod"
    extra: dict[str, str] = Field(default_factory=dict)

    @field_validator("owner", "cost_center", "environment")
    @classmethod
    def _tag_value(cls, value: str) -> str:
        if not _tag_text(value):
            raise ValueError("tag values may hold letters, digits, spaces and _ . : / = + - @")
        return value

    @field_validator("extra")
    @classmethod
    def _extra_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        for key, value in tags.items():
            if not 1 <= len(key) <= 128 or not _tag_text(key):
                raise ValueError(f"tag key {key!r}: 1-128 of letters, digits and _ . : / = + - @")
            if key.lower().startswith("aws:"):
                raise ValueError(f"tag key {key!r}: the aws: prefix is reserved")
            if len(value) > 256 or not _tag_text(value):
                raise ValueError(f"tag {key!r}: value must be <= 256 allowed characters")
        return tags

    @model_validator(mode="after")
    def _fits_every_resource(self) -> "Tags":
        added = ("owner", "cost-center", "environment", BU_TAG_KEY)
        room = MAX_TAGS_PER_RESOURCE - RESOURCE_OWN_TAGS - len(added)
        extra = len(set(self.extra) - set(added))
        if extra > room:
            raise FieldProblemError(
                "extra",
                f"{extra} tags, at most {room}: CloudFormation takes {MAX_TAGS_PER_RESOURCE} "
                f"tags on a resource, the platform puts {len(added)} on every one "
                f"({', '.join(added)}) and a resource may carry {RESOURCE_OWN_TAGS} of its own "
                "(a subnet's Name, aws-cdk:subnet-name/-type, kubernetes.io/role/*)",
            )
        return self

    def as_dict(self) -> dict[str, str]:
        return {
            "owner": self.owner,
            "cost-center": self.cost_center,
            "environment": self.environment,
            **self.extra,
        }


class Network(StrictModel):
    """The BU's VPC: private subnets in each listed AZ, closed to the internet by default."""

    cidr: ipaddress.IPv4Network
    availability_zones: list[str] = Field(min_length=2, max_length=6)
    # /19 = 8,190 addresses per AZ: room for EKS pod IPs and HyperPod ENIs.
    private_subnet_prefix: int = Field(default=19, ge=SMALLEST_VPC_PREFIX, le=28)
    # `closed`: no internet gateway, no NAT; AWS services through VPC endpoints only.
    egress: Literal["closed", "nat"] = "closed"
    # Only with egress `nat`: a NAT gateway per AZ (AZ-resilient) or one shared (cheaper).
    nat_gateways: Literal["one_per_az", "single"] = "one_per_az"
    public_subnet_prefix: int = Field(default=26, ge=SMALLEST_VPC_PREFIX, le=28)
    flow_log_retention_days: Literal[90, 180, 365, 731, 1827, 3653] = 365

    @field_validator("cidr", mode="before")
    @classmethod
    def _strict_cidr(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                ipaddress.IPv4Network(value, strict=True)
            except ValueError as err:
                raise ValueError(f"not an IPv4 network CIDR: {err}") from None
        return value

    @field_validator("cidr")
    @classmethod
    def _cidr_range(cls, cidr: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not SMALLEST_VPC_PREFIX <= cidr.prefixlen <= LARGEST_VPC_PREFIX:
            raise ValueError(f"a VPC CIDR must be /{SMALLEST_VPC_PREFIX} to /{LARGEST_VPC_PREFIX}")
        if not any(cidr.subnet_of(allowed) for allowed in VPC_RANGES):
            ranges = ", ".join(str(allowed) for allowed in VPC_RANGES)
            raise ValueError(f"a VPC CIDR must lie inside an RFC 1918 range ({ranges})")
        return cidr

    @field_validator("private_subnet_prefix")
    @classmethod
    def _subnet_size(cls, prefix: int) -> int:
        if 2 ** (32 - prefix) < MIN_PRIVATE_SUBNET_ADDRESSES:
            raise ValueError(
                f"/{prefix} is too small for EKS pods and HyperPod ENIs; use /22 or larger"
            )
        return prefix

    @field_validator("availability_zones")
    @classmethod
    def _unique_azs(cls, azs: list[str]) -> list[str]:
        if len(set(azs)) != len(azs):
            raise ValueError("availability zones must be unique")
        return azs

    @model_validator(mode="after")
    def _fits(self) -> "Network":
        nat_only = sorted({"nat_gateways", "public_subnet_prefix"} & self.model_fields_set)
        if self.egress == "closed" and nat_only:
            raise FieldProblemError(nat_only[0], "only applies when egress is 'nat'")
        if self.private_subnet_prefix < self.cidr.prefixlen:
            raise FieldProblemError(
                "private_subnet_prefix",
                f"/{self.private_subnet_prefix} subnets are larger than the VPC {self.cidr}",
            )
        needed = len(self.availability_zones) * 2 ** (32 - self.private_subnet_prefix)
        if self.egress == "nat":
            needed += len(self.availability_zones) * 2 ** (32 - self.public_subnet_prefix)
        if needed > self.cidr.num_addresses:
            raise FieldProblemError(
                "cidr",
                f"{len(self.availability_zones)} AZs of /{self.private_subnet_prefix} subnets "
                f"need {needed} addresses; {self.cidr} has {self.cidr.num_addresses}",
            )
        return self

    @property
    def nat_gateway_count(self) -> int:
        if self.egress == "closed":
            return 0
        return 1 if self.nat_gateways == "single" else len(self.availability_zones)


class BusinessUnitConfig(StrictModel):
    """Everything that differs between business units; one per ``config/<bu>.yaml``."""

    name: str
    # An unquoted ID is a YAML number: pydantic's string check, and its "quote it" hint
    # (core.base), come first.
    account: Annotated[str, matching(ACCOUNT_ID.pattern, "a 12-digit AWS account ID")]
    region: Annotated[str, one_of(sorted(AVAILABILITY_ZONES), "a region this platform knows")]
    network: Network
    tags: Tags
    # Stateful resources (buckets, keys, log groups) survive `cdk destroy` unless a BU opts out.
    removal_policy: Literal["retain", "destroy"] = "retain"
    # Optional sections, one module each (config/<section>.py); a BU that leaves one out gets
    # no such stack. Rules that span sections live in `_cross_section` below.
    studio: Studio | None = None
    hyperpod: HyperPod | None = None
    mlflow: Mlflow | None = None
    endpoints: Endpoints | None = None
    governance: Governance | None = None
    pipeline: Pipeline | None = None

    @field_validator("name")
    @classmethod
    def _bu_name(cls, name: str) -> str:
        if len(name) < 2 or not BU_NAME.fullmatch(name):
            raise ValueError(
                "a BU name is 2+ lowercase letters, digits and single hyphens, "
                "starting with a letter (it prefixes bucket and DNS names)"
            )
        return name

    @model_validator(mode="after")
    def _azs_and_names(self) -> "BusinessUnitConfig":
        known = AVAILABILITY_ZONES[self.region]
        wrong = [az for az in self.network.availability_zones if az not in known]
        if wrong:
            raise FieldProblemError(
                "network.availability_zones",
                f"{', '.join(wrong)} not in {self.region} ({', '.join(known)})",
            )
        problems = self.naming.limit_problems()
        if problems:
            raise FieldProblemError("name", "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _cross_section(self) -> "BusinessUnitConfig":
        """Rules that need two sections (an endpoint on HyperPod needs a ``hyperpod`` section,
        a MIG slice must exist on the cluster, ...). Raise FieldProblemError with the full path."""
        if self.hyperpod is not None:
            if self.region not in HYPERPOD_REGIONS:
                raise FieldProblemError(
                    "hyperpod",
                    f"CloudFormation in {self.region} lacks "
                    f"{', '.join(MISSING_HYPERPOD_TYPES[self.region])}, which the HyperPod "
                    f"stack needs; a BU with a hyperpod section needs one of "
                    f"{', '.join(sorted(HYPERPOD_REGIONS))}",
                )
            azs = self.network.availability_zones
            if self.hyperpod.availability_zone not in (None, *azs):
                raise FieldProblemError(
                    "hyperpod.availability_zone",
                    f"{self.hyperpod.availability_zone} is not one of the BU's AZs "
                    f"({', '.join(azs)})",
                )
        if self.endpoints is not None:
            self.endpoints.check(naming=self.naming, hyperpod=self.hyperpod)
        if self.pipeline is not None:
            self.pipeline.check(
                hyperpod=self.hyperpod, endpoints=self.endpoints, mlflow=self.mlflow
            )
        return self

    @property
    def naming(self) -> Naming:
        return Naming(bu=self.name, account=self.account, region=self.region)


class PlatformSettings(StrictModel):
    """Settings shared by all BUs: where `config new` takes the next VPC CIDR from."""

    cidr_pool: ipaddress.IPv4Network = ipaddress.IPv4Network("10.64.0.0/10")
    new_bu_prefix: int = Field(default=16, ge=SMALLEST_VPC_PREFIX, le=LARGEST_VPC_PREFIX)


PLATFORM = PlatformSettings()
