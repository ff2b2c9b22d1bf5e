"""The SSM parameters a BU's stacks publish and its clients read: one list, both sides import it.

Stacks write ``Naming.parameter(NAME)`` (``/<bu>/<NAME>``) with the value; ``training.job``,
``inference`` and the README read the same names, so a rename breaks a test, not a deployment.
Team-scoped names take the team: ``team_parameter(TEAM_NAMESPACE, "nlp")``.
"""

# Published by the MLflow stack.
MLFLOW_TRACKING_ARN = "mlflow/tracking-arn"  # MLFLOW_TRACKING_URI for the sagemaker-mlflow plugin
MLFLOW_ARTIFACT_BUCKET = "mlflow/artifact-bucket"

# Published by the HyperPod stack(s).
HYPERPOD_CLUSTER_NAME = "hyperpod/cluster-name"
HYPERPOD_CLUSTER_ARN = "hyperpod/cluster-arn"
EKS_CLUSTER_NAME = "hyperpod/eks-cluster-name"
PROMETHEUS_WORKSPACE = "hyperpod/prometheus-workspace-endpoint"
GRAFANA_URL = "hyperpod/grafana-url"
# Per team (``team_parameter``).
TEAM_NAMESPACE = "namespace"
TEAM_QUEUE = "queue"  # Kueue LocalQueue name
TEAM_SERVICE_ACCOUNT = "service-account"
TEAM_FSX_CLAIM = "fsx-claim"  # PersistentVolumeClaim name in the team namespace

# Published by the training stack (the BU's image repository, managed-job role and network).
TRAINING_IMAGE_URI = "training/image-uri"  # repository URI; the tag is the git SHA
TRAINING_JOB_ROLE_ARN = "training/job-role-arn"
TRAINING_SUBNET_IDS = "training/subnet-ids"  # comma-separated private subnet IDs
TRAINING_SECURITY_GROUP_ID = "training/security-group-id"
TRAINING_VOLUME_KEY_ARN = "training/volume-key-arn"  # KMS key of managed jobs' ML storage volumes

# Published by the training stack from the security stack's buckets and keys (names and keys
# clients need to build S3 URIs and ask for SSE-KMS with the bucket's own key).
DATA_BUCKET = "storage/data-bucket"
MODELS_BUCKET = "storage/models-bucket"
CHECKPOINTS_BUCKET = "storage/checkpoints-bucket"
DATA_KEY_ARN = "storage/data-key-arn"
MODELS_KEY_ARN = "storage/models-key-arn"

# Published by the pipeline stack (a BU with a `pipeline` section): the MWAA environment, the
# role its tasks run as, and the bucket `dags/`, plugins.zip and requirements.txt go to. The
# DAG's own state goes under ``pipeline/`` too (its role may write there, except these three).
PIPELINE_ENVIRONMENT_NAME = "pipeline/environment-name"
PIPELINE_EXECUTION_ROLE_ARN = "pipeline/execution-role-arn"
PIPELINE_SOURCE_BUCKET = "pipeline/source-bucket"


def team_parameter(name: str, team: str) -> str:
    """A team-scoped parameter name: ``hyperpod/teams/<team>/<name>``."""
    return f"hyperpod/teams/{team}/{name}"


# Which stack unit (``Naming.stack(unit)``) publishes each group of names, so a client can say
# which stack to deploy when a parameter is missing.
_PUBLISHER = {
    "mlflow": "mlflow",
    "hyperpod": "hyperpod",
    "training": "training",
    "storage": "training",
    "pipeline": "pipeline",
}


def publishing_unit(name: str) -> str:
    """``hyperpod/teams/nlp/queue`` -> ``hyperpod``; ``storage/data-bucket`` -> ``training``."""
    return _PUBLISHER[name.split("/", 1)[0]]
