"""The ``studio`` section of a BU config.

SageMaker Studio domain: IAM Identity Center sign-in (with trusted identity propagation), who
may sign in, JupyterLab and Code Editor defaults, private and shared spaces (issue: Studio).
"""

import re
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from core.base import FieldProblemError, StrictModel, ascii_pattern, matching, one_of

# Memory (GiB) of the Studio instance types a space may use: every type here is also in the
# CloudFormation schema of AWS::SageMaker::Space (cfn-lint 1.58), so a valid config lints clean.
INSTANCE_MEMORY_GIB: dict[str, int] = {
    "ml.t3.medium": 4,
    "ml.t3.large": 8,
    "ml.t3.xlarge": 16,
    "ml.t3.2xlarge": 32,
    "ml.m5.large": 8,
    "ml.m5.xlarge": 16,
    "ml.m5.2xlarge": 32,
    "ml.m5.4xlarge": 64,
    "ml.m5.8xlarge": 128,
    "ml.m5.12xlarge": 192,
    "ml.m5.16xlarge": 256,
    "ml.m5.24xlarge": 384,
    "ml.c5.large": 4,
    "ml.c5.xlarge": 8,
    "ml.c5.2xlarge": 16,
    "ml.c5.4xlarge": 32,
    "ml.c5.9xlarge": 72,
    "ml.r5.large": 16,
    "ml.r5.xlarge": 32,
    "ml.r5.2xlarge": 64,
    "ml.r5.4xlarge": 128,
    "ml.g4dn.xlarge": 16,
    "ml.g4dn.2xlarge": 32,
    "ml.g4dn.4xlarge": 64,
    "ml.g5.xlarge": 16,
    "ml.g5.2xlarge": 32,
    "ml.g5.4xlarge": 64,
    "ml.g5.8xlarge": 128,
    "ml.g5.12xlarge": 192,
    "ml.g5.48xlarge": 768,
}
# Remote IDE access (local VS Code) needs at least 8 GiB of memory on the space's instance
# (SageMaker developer guide, "Connect your Remote IDE to SageMaker spaces").
REMOTE_ACCESS_MIN_MEMORY_GIB = 8

# Identity Center shapes (AWS API reference: sso-admin InstanceArn, identitystore IdentityStoreId,
# AWS::SSO::ApplicationAssignment PrincipalId, i.e. an optional "<10 hex>-" then a UUID).
_PRINCIPAL_ID = ascii_pattern(
    r"(?:([0-9a-f]{10})-)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
# What Studio accepts as a user-profile or space name (AWS::SageMaker::UserProfile schema).
_STUDIO_NAME = ascii_pattern(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
# Identity Center user names: letters and digits of any script (the identity store takes
# Unicode names, e.g. from SCIM), and these symbols; no spaces, tabs or newlines.
_USER_NAME_SYMBOLS = frozenset("+=,.@_-")
MAX_STUDIO_NAME = 63
# Private spaces are `<profile>-jupyterlab` and `<profile>-code-editor`: the longer suffix
# bounds the profile name.
SPACE_SUFFIXES = {"jupyterlab": "jupyterlab", "code_editor": "code-editor"}
MAX_PROFILE_NAME = MAX_STUDIO_NAME - 1 - max(len(s) for s in SPACE_SUFFIXES.values())
# Idle shutdown limits CloudFormation accepts (IdleTimeoutInMinutes: 60 to 525,600).
MIN_IDLE_MINUTES, MAX_IDLE_MINUTES = 60, 525_600
# EBS volume sizes a space may have (SpaceEbsVolumeSizeInGb: 5 to 16,384).
MIN_EBS_GB, MAX_EBS_GB = 5, 16_384

AppKind = Literal["jupyterlab", "code_editor"]
InstanceType = Annotated[
    str, one_of(sorted(INSTANCE_MEMORY_GIB), "a Studio instance type this platform knows")
]
EbsSize = Annotated[int, Field(ge=MIN_EBS_GB, le=MAX_EBS_GB)]
IdleMinutes = Annotated[int, Field(ge=MIN_IDLE_MINUTES, le=MAX_IDLE_MINUTES)]


def profile_name_for(user_name: str) -> str:
    """A Studio-safe profile name from an Identity Center user name: an e-mail's local part,
    lowercased, every run of other characters one hyphen (``Jane.Doe@x.com`` -> ``jane-doe``)."""
    return re.sub(r"[^a-z0-9]+", "-", user_name.split("@", 1)[0].lower()).strip("-")


class IdentityCenter(StrictModel):
    """The IAM Identity Center instance the domain signs users in with (same region as the BU)."""

    instance_arn: Annotated[
        str,
        matching(
            r"arn:aws(-[a-z]+)*:sso:::instance/(sso)?ins-[a-zA-Z0-9-.]{16}",
            "an Identity Center instance ARN (arn:aws:sso:::instance/ssoins-<16 characters>)",
        ),
    ]
    identity_store_id: Annotated[
        str, matching(r"d-[0-9a-f]{10}", "an identity store ID (d-<10 hex digits>)")
    ]

    @property
    def portal_url(self) -> str:
        """The AWS access portal's default address for this identity store."""
        return f"https://{self.identity_store_id}.awsapps.com/start"


def _principal_id(value: str, kind: str) -> str:
    if not _PRINCIPAL_ID.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an Identity Center {kind} ID ([<10 hex>-]<UUID>, "
            "from the identity store, not the user name)"
        )
    return value


class StudioUser(StrictModel):
    """One person: a user profile, an application assignment and their private spaces."""

    # Identity Center UserName (the profile's SingleSignOnUserValue): what they sign in with.
    user_name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    # The identity-store user ID (the application assignment's PrincipalId).
    user_id: str
    # The Studio user-profile name; derived from user_name when left out.
    profile_name: str | None = None

    @field_validator("user_name")
    @classmethod
    def _user_name(cls, name: str) -> str:
        if not all(ch.isalnum() or ch in _USER_NAME_SYMBOLS for ch in name):
            raise ValueError("an Identity Center user name holds letters, digits and + = , . @ _ -")
        return name

    @field_validator("user_id")
    @classmethod
    def _user_id(cls, value: str) -> str:
        return _principal_id(value, "user")

    @property
    def profile(self) -> str:
        return self.profile_name or profile_name_for(self.user_name)

    @model_validator(mode="after")
    def _studio_accepts_the_profile_name(self) -> "StudioUser":
        field = "profile_name" if self.profile_name else "user_name"
        if not _STUDIO_NAME.fullmatch(self.profile) or len(self.profile) > MAX_PROFILE_NAME:
            raise FieldProblemError(
                field,
                f"user profile name {self.profile!r}: Studio accepts letters, digits and "
                f"hyphens, starting with a letter or digit, at most {MAX_PROFILE_NAME} characters "
                "(so that its space names fit 63); set profile_name",
            )
        return self


class StudioGroup(StrictModel):
    """An Identity Center group whose members may open the domain (no profile is made for them:
    Studio creates a member's profile when they first sign in)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]  # for readers only
    group_id: str

    @field_validator("group_id")
    @classmethod
    def _group_id(cls, value: str) -> str:
        return _principal_id(value, "group")


class AppDefaults(StrictModel):
    """Defaults for one IDE (JupyterLab or Code Editor): instance, disk and idle shutdown."""

    instance_type: InstanceType = "ml.m5.large"  # 2 vCPU, 8 GiB: enough for remote access
    ebs_size_gb: EbsSize = 20
    # Idle apps shut down after this; users may pick a value between the min and max.
    idle_timeout_minutes: IdleMinutes = 60
    min_idle_timeout_minutes: IdleMinutes = 60
    max_idle_timeout_minutes: IdleMinutes = 480

    @model_validator(mode="after")
    def _idle_range(self) -> "AppDefaults":
        if not (
            self.min_idle_timeout_minutes
            <= self.idle_timeout_minutes
            <= self.max_idle_timeout_minutes
        ):
            raise FieldProblemError(
                "idle_timeout_minutes",
                f"{self.idle_timeout_minutes} must lie between min_idle_timeout_minutes "
                f"({self.min_idle_timeout_minutes}) and max_idle_timeout_minutes "
                f"({self.max_idle_timeout_minutes})",
            )
        return self


class SharedSpace(StrictModel):
    """A team space every member of the domain can open (SharingType Shared)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_STUDIO_NAME)]
    app: AppKind = "jupyterlab"
    owner: str  # user_name of a listed user; Studio records a creator for every space
    instance_type: InstanceType | None = None  # default: the app's
    ebs_size_gb: EbsSize | None = None  # default: the app's
    remote_access: bool = False

    @field_validator("name")
    @classmethod
    def _space_name(cls, name: str) -> str:
        if not _STUDIO_NAME.fullmatch(name):
            raise ValueError("a space name holds letters, digits and single hyphens")
        return name


class Studio(StrictModel):
    """A Studio domain for the BU: Identity Center sign-in, VPC only, private spaces per user."""

    identity_center: IdentityCenter | None = None
    # Studio's calls carry the signed-in user's identity (CloudTrail, S3 Access Grants).
    trusted_identity_propagation: bool = True
    users: list[StudioUser] = Field(default_factory=list)
    groups: list[StudioGroup] = Field(default_factory=list)
    jupyterlab: AppDefaults = AppDefaults()
    code_editor: AppDefaults = AppDefaults()
    # Each user's private JupyterLab and Code Editor spaces accept local VS Code connections.
    remote_access: bool = True
    # The largest EBS volume a user may resize a space to.
    max_ebs_size_gb: EbsSize = 100
    shared_spaces: list[SharedSpace] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "Studio":
        if self.identity_center is None:
            raise FieldProblemError(
                "identity_center",
                "a Studio domain signs users in through IAM Identity Center (AuthMode SSO): "
                "set instance_arn and identity_store_id",
            )
        self._unique_people()
        self._user_ids_in_store(self.identity_center.identity_store_id)
        self._spaces_fit()
        return self

    def _unique_people(self) -> None:
        seen: dict[str, int] = {}
        for i, user in enumerate(self.users):
            for key, field in (
                (f"name:{user.user_name.lower()}", "user_name"),
                (f"id:{user.user_id}", "user_id"),
                (f"profile:{user.profile}", "profile_name" if user.profile_name else "user_name"),
            ):
                if key in seen:
                    raise FieldProblemError(
                        f"users.{i}.{field}",
                        f"duplicate user: {key.split(':', 1)[1]!r} is also users.{seen[key]}",
                    )
                seen[key] = i
        ids = [g.group_id for g in self.groups]
        for i, group_id in enumerate(ids):
            if group_id in ids[:i]:
                raise FieldProblemError(f"groups.{i}.group_id", f"duplicate group {group_id!r}")

    def _user_ids_in_store(self, store: str) -> None:
        """A prefixed principal ID names its identity store: it must be the configured one."""
        principals = [(f"users.{i}.user_id", u.user_id) for i, u in enumerate(self.users)]
        principals += [(f"groups.{i}.group_id", g.group_id) for i, g in enumerate(self.groups)]
        for path, value in principals:
            match = _PRINCIPAL_ID.fullmatch(value)
            prefix = match.group(1) if match else None
            if prefix and prefix != store.removeprefix("d-"):
                raise FieldProblemError(
                    path, f"{value!r} belongs to identity store d-{prefix}, not {store}"
                )

    def _spaces_fit(self) -> None:
        apps = {"jupyterlab": self.jupyterlab, "code_editor": self.code_editor}
        for kind, app in apps.items():
            if app.ebs_size_gb > self.max_ebs_size_gb:
                raise FieldProblemError(
                    f"{kind}.ebs_size_gb",
                    f"{app.ebs_size_gb} GB is over max_ebs_size_gb ({self.max_ebs_size_gb})",
                )
            if self.remote_access and self.users:
                _remote_capable(f"{kind}.instance_type", app.instance_type)
        owners = {u.user_name for u in self.users}
        names = {f"{u.profile}-{suffix}" for u in self.users for suffix in SPACE_SUFFIXES.values()}
        for i, space in enumerate(self.shared_spaces):
            if space.owner not in owners:
                raise FieldProblemError(
                    f"shared_spaces.{i}.owner", f"{space.owner!r} is not one of studio.users"
                )
            if space.name in names:
                raise FieldProblemError(
                    f"shared_spaces.{i}.name", f"space {space.name!r} is already taken"
                )
            names.add(space.name)
            size = space.ebs_size_gb or apps[space.app].ebs_size_gb
            if size > self.max_ebs_size_gb:
                raise FieldProblemError(
                    f"shared_spaces.{i}.ebs_size_gb",
                    f"{size} GB is over max_ebs_size_gb ({self.max_ebs_size_gb})",
                )
            if space.remote_access:
                _remote_capable(f"shared_spaces.{i}.instance_type", self.instance_type_of(space))

    def instance_type_of(self, space: SharedSpace) -> str:
        app = self.jupyterlab if space.app == "jupyterlab" else self.code_editor
        return space.instance_type or app.instance_type

    def ebs_size_of(self, space: SharedSpace) -> int:
        app = self.jupyterlab if space.app == "jupyterlab" else self.code_editor
        return space.ebs_size_gb or app.ebs_size_gb


def _remote_capable(path: str, instance_type: str) -> None:
    memory = INSTANCE_MEMORY_GIB[instance_type]
    if memory < REMOTE_ACCESS_MIN_MEMORY_GIB:
        raise FieldProblemError(
            path,
            f"{instance_type} has {memory} GiB of memory; remote access (local VS Code) needs "
            f"at least {REMOTE_ACCESS_MIN_MEMORY_GIB} GiB (e.g. ml.m5.large or ml.t3.large)",
        )
