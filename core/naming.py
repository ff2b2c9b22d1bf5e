"""The one naming helper: every physical name is derived from a BU's name, account and region.

Stacks pass these names to the constructs, so two BUs can share an account without a
collision, and the config validator checks the longest names against AWS limits before any
synthesis (a BU name that fits today must not break when a later stack adds a resource).
"""

from dataclasses import dataclass

# Purposes that get a bucket (and a customer-managed KMS key, except access-logs: S3 server
# access logging cannot deliver to an SSE-KMS bucket). The `studio` key (Studio stack) encrypts
# the domain's home EFS, its spaces' EBS volumes and the Studio stack's log group.
BUCKET_PURPOSES = (
    "data",
    "models",
    "checkpoints",
    "mlflow-artifacts",
    "hyperpod-lifecycle",
    "inference-capture",
    "access-logs",
)
# Buckets only some BUs get: the HyperPod inference operator's TLS certificates (a BU serving
# an endpoint on HyperPod). Named and length-checked like the rest.
OPTIONAL_BUCKET_PURPOSES = ("inference-tls",)
KEY_PURPOSES = (
    *(p for p in BUCKET_PURPOSES if p != "access-logs"),
    "logs",
    "studio",
    "training",
    "endpoint-alarms",
)
# Roles and named resources the later stacks (Studio, HyperPod, MLflow, endpoints) will create;
# listed here so that a BU name is checked against them today.
RESERVED_ROLE_PURPOSES = (
    "studio-execution",
    "hyperpod-execution",
    "mlflow-tracking",
    "endpoint-execution",
    "training-job",
    # HyperPod stack: EKS control plane, kubectl handler, add-on identities (team roles are
    # `hyperpod-team-<team>`, checked with the team's name by the hyperpod schema).
    "hyperpod-eks",
    "hyperpod-kubectl",
    "hyperpod-training-operator",
    "hyperpod-observability",
    "hyperpod-inference",
    "hyperpod-vpc-cni",
    # SageMaker Spaces (hyperpod.spaces): its controller, the SSM managed-node role of remote
    # access, and the EBS CSI driver that holds the spaces' home volumes.
    "hyperpod-spaces-controller",
    "hyperpod-spaces-ssm",
    "hyperpod-ebs-csi",
    # Governance stack: the role AWS Budgets assumes to attach and detach the deny policy.
    "budget-action",
    # Pipeline stack: the MWAA environment's execution role (the DAG's tasks run as it).
    "pipeline-execution",
)
RESERVED_RESOURCE_PURPOSES = (
    "studio",
    "hyperpod",
    "eks",
    "mlflow",
    "training",
    "hyperpod-metrics",
    "airflow",  # the MWAA environment (<= 80 characters; the 63 here is stricter)
)
STACK_UNITS = (
    "network",
    "security",
    "studio",
    "hyperpod",
    "mlflow",
    "endpoints",
    "training",
    "governance",
    "pipeline",
)
# Keys only a BU with a `governance` section gets (the budget alerts' SNS topic).
GOVERNANCE_KEY_PURPOSES = ("budget-alerts",)
# Keys only a BU with a `pipeline` section gets: the MWAA environment and its source bucket
# share one (MWAA user guide, "Create an Amazon S3 bucket for Amazon MWAA": with server-side
# encryption, "you must use the same key for your Amazon S3 bucket and Amazon MWAA environment").
PIPELINE_KEY_PURPOSES = ("pipeline",)

# The Stage tags every resource with its BU's name: IAM conditions match resources whose ARN
# holds a generated ID, not our name (a HyperPod cluster's ARN ends in its cluster ID).
BU_TAG_KEY = "business-unit"

# AWS limits on the names we build.
MAX_BUCKET_NAME = 63
MAX_ROLE_NAME = 64
MAX_STACK_NAME = 128
MAX_KEY_ALIAS = 256
MAX_LOG_GROUP = 512
MAX_RESOURCE_NAME = 63  # SageMaker domain/cluster/tracking-server names, EKS cluster names


@dataclass(frozen=True)
class Naming:
    """Names for one BU; ``bu`` is already validated as lowercase DNS-safe."""

    bu: str
    account: str
    region: str

    def stack(self, unit: str) -> str:
        return f"{self.bu}-{unit}"

    def bucket(self, purpose: str) -> str:
        # Account and region make the globally unique S3 namespace collision-free.
        return f"{self.bu}-{purpose}-{self.account}-{self.region}"

    def airflow_bucket(self) -> str:
        """The MWAA source bucket (DAGs, plugins.zip, requirements.txt): ``airflow-`` first, a
        prefix MWAA is reported to require (the stored MWAA user guide lists only S3's general
        naming rules, so the prefix is the cautious choice), then what ``bucket`` carries."""
        return f"airflow-{self.bu}-{self.account}-{self.region}"

    def key_alias(self, purpose: str) -> str:
        return f"alias/{self.bu}/{purpose}"

    def log_group(self, purpose: str) -> str:
        return f"/{self.bu}/{purpose}"

    def role(self, purpose: str) -> str:
        # IAM is global: the region keeps a BU deployed to two regions collision-free.
        return f"{self.bu}-{purpose}-{self.region}"

    def resource(self, purpose: str) -> str:
        return f"{self.bu}-{purpose}"

    def parameter(self, name: str) -> str:
        """An SSM parameter the BU's stacks publish for clients (see ``core.parameters``)."""
        return f"/{self.bu}/{name}"

    def limit_problems(self) -> list[str]:
        """Every derived name that breaks an AWS limit, as human-readable reasons."""
        checks: list[tuple[str, int]] = [
            *((self.bucket(p), MAX_BUCKET_NAME) for p in BUCKET_PURPOSES),
            *((self.bucket(p), MAX_BUCKET_NAME) for p in OPTIONAL_BUCKET_PURPOSES),
            (self.airflow_bucket(), MAX_BUCKET_NAME),
            *((self.role(p), MAX_ROLE_NAME) for p in RESERVED_ROLE_PURPOSES),
            *((self.stack(u), MAX_STACK_NAME) for u in STACK_UNITS),
            *((self.key_alias(p), MAX_KEY_ALIAS) for p in KEY_PURPOSES),
            *((self.key_alias(p), MAX_KEY_ALIAS) for p in OPTIONAL_BUCKET_PURPOSES),
            *((self.key_alias(p), MAX_KEY_ALIAS) for p in GOVERNANCE_KEY_PURPOSES),
            *((self.key_alias(p), MAX_KEY_ALIAS) for p in PIPELINE_KEY_PURPOSES),
            *((self.log_group(p), MAX_LOG_GROUP) for p in ("vpc-flow-logs", "studio")),
            *((self.resource(p), MAX_RESOURCE_NAME) for p in RESERVED_RESOURCE_PURPOSES),
        ]
        return [
            f"derived name {name!r} is {len(name)} characters, over the AWS limit of {limit}"
            for name, limit in checks
            if len(name) > limit
        ]
