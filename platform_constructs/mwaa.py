"""Amazon MWAA for a BU's model pipeline: the environment (L1, the only CloudFormation form), its
source bucket and key, its security group and execution role, and what the pipeline's tasks may
do as that role (SageMaker jobs, one endpoint, S3 prefixes, SSM, and on the BU's EKS cluster the
Kubernetes calls it makes in the namespaces of the team it trains in and of the HyperPod
endpoint it deploys to: ``platform_constructs.pipeline_rbac``).

Every AWS fact here names its source; the MWAA user guide pages are quoted by title.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_mwaa as mwaa
from aws_cdk import aws_s3 as s3
from constructs import Construct

from platform_constructs.access import MlflowAccess
from platform_constructs.buckets import SecureBucket
from platform_constructs.gates import COMPLIANCE_PACKS, acknowledge, acknowledge_each
from platform_constructs.grant_findings import nag_form
from platform_constructs.keys import PurposeKey
from platform_constructs.pipeline_rbac import KubeRule, PipelineRbac
from platform_constructs.security_groups import HTTPS, allow_https_to_s3, closed_group

# The two principals MWAA assumes the execution role as (MWAA user guide, "Amazon MWAA
# execution role": add "airflow.amazonaws.com" and "airflow-env.amazonaws.com" to the trust).
MWAA_PRINCIPALS = ("airflow.amazonaws.com", "airflow-env.amazonaws.com")
# The environment's five Airflow log types (CloudFormation, AWS::MWAA::Environment
# LoggingConfiguration); MWAA writes each to the group `airflow-<environment>-<type>`.
LOG_TYPES = ("DagProcessingLogs", "SchedulerLogs", "TaskLogs", "WebserverLogs", "WorkerLogs")
# Where the DAGs, the plugins and the requirements live in the source bucket (the make target
# that uploads them uses the same three).
DAGS_PATH = "dags"
PLUGINS_PATH = "plugins.zip"
REQUIREMENTS_PATH = "requirements.txt"
# MWAA's Celery queues live in MWAA's account, named `airflow-celery-*` (execution role sample).
CELERY_QUEUES = "airflow-celery-*"
CELERY_ACTIONS = (
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
    "sqs:SendMessage",
)
# The CloudWatch Logs actions of the execution role sample, on the environment's log groups.
LOG_ACTIONS = (
    "logs:CreateLogStream",
    "logs:CreateLogGroup",
    "logs:PutLogEvents",
    "logs:GetLogEvents",
    "logs:GetLogRecord",
    "logs:GetLogGroupFields",
    "logs:GetQueryResults",
)
# The source-bucket families of the execution role sample: MWAA reads the objects and checks the
# bucket's settings (versioning, encryption, public access).
SOURCE_READ_ACTIONS = ("s3:GetObject*", "s3:GetBucket*", "s3:List*")
# Source-bucket versions that are no longer current stay this long. MWAA fetches the pinned
# plugins.zip/requirements.txt version whenever a container starts, so a pinned version must not
# expire while the config names it: re-pin (deploy the newer versions) within this many days.
SOURCE_NONCURRENT_DAYS = 365


@dataclass(frozen=True)
class Sizing:
    """The environment's capacity (MWAA user guide, "Amazon MWAA environment class")."""

    environment_class: str
    min_workers: int
    max_workers: int
    schedulers: int


@dataclass(frozen=True)
class S3Artifact:
    """A file of the source bucket MWAA installs at start-up, pinned to one object version."""

    path: str
    version: str


@dataclass(frozen=True)
class BucketPrefixes:
    """One of the BU's buckets as the pipeline uses it: key prefixes (each ending in '/') it
    reads, and prefixes it reads and writes."""

    label: str  # names its statements: "Data" -> ListData, ReadData, ...
    bucket_name: str
    key: kms.IKey
    read: tuple[str, ...] = ()
    read_write: tuple[str, ...] = ()


@dataclass(frozen=True)
class EndpointUpdate:
    """The SageMaker endpoint a blue/green update replaces the model of.

    ``bu_tag``: the (key, value) tag the BU's own resources carry; the model and endpoint config
    CloudFormation made for the endpoint have generated names, so the pipeline may describe
    them (to copy what the endpoint serves) by that tag. ``alarm_prefix``: the endpoint's
    CloudWatch alarms (the auto-rollback alarms of the update). ``endpoint_keys``: the keys an
    endpoint config names (volume, data capture), which SageMaker uses through grants the
    caller of CreateEndpointConfig/UpdateEndpoint makes.
    """

    endpoint_name: str
    bu_tag: tuple[str, str]
    alarm_prefix: str
    endpoint_keys: tuple[kms.IKey, ...]


@dataclass(frozen=True)
class SageMakerScope:
    """What the pipeline may do on SageMaker: processing and training jobs named
    ``<name_prefix>*``; pass exactly these roles; with ``endpoint`` (a deploy to a SageMaker
    endpoint), models and endpoint configs named ``<name_prefix>*`` and the update of that one
    endpoint. A deploy to HyperPod has no ``endpoint``: it goes through the cluster."""

    name_prefix: str
    passed_role_names: tuple[str, ...]
    # The training image's ECR repository: the run pins its tag to a digest (DescribeImages).
    image_repository: str
    endpoint: EndpointUpdate | None


@dataclass(frozen=True)
class ModelReader:
    """A role (by name, owned by another stack) that must read what the pipeline writes under
    ``prefix`` of ``bucket_name``: the endpoint role loading a candidate model, or the HyperPod
    inference operator's role serving one. ``why``: the reason its wildcard is acknowledged."""

    role_name: str
    bucket_name: str
    prefix: str
    key: kms.IKey
    why: str


@dataclass(frozen=True)
class ClusterAccess:
    """What the pipeline does on the BU's EKS cluster: ``rules`` per namespace (its training
    team's: the jobs; its HyperPod endpoint's: the InferenceEndpointConfig it re-applies),
    granted to the Kubernetes ``group`` its access entry names. ``cluster`` carries the kubectl
    provider that applies the Roles."""

    cluster: eks.ICluster
    group: str
    rules: Mapping[str, tuple[KubeRule, ...]]
    # The control plane's security group: admits the environment on 443 (the private endpoint).
    control_plane_security_group: ec2.ISecurityGroup


def _arn(scope: Construct, service: str, resource: str, *, region: bool = True) -> str:
    """``arn:<partition>:<service>:<region>:<account>:<resource>`` of this stack."""
    return cdk.Stack.of(scope).format_arn(
        service=service,
        region=None if region else "",
        resource=resource,
        arn_format=cdk.ArnFormat.NO_RESOURCE_NAME,
    )


def _object_arn(scope: Construct, bucket_name: str, key: str) -> str:
    return cdk.Stack.of(scope).format_arn(
        service="s3", region="", account="", resource=bucket_name, resource_name=key
    )


def _bucket_arn(scope: Construct, bucket_name: str) -> str:
    return cdk.Stack.of(scope).format_arn(service="s3", region="", account="", resource=bucket_name)


def _inline_default_policy(role: iam.Role, why: str) -> None:
    """The compliance packs' IAMNoInlinePolicy on the role's default policy, when a grant made
    from another stack (MLflow) wrote one."""
    default_policy = role.node.try_find_child("DefaultPolicy")
    if default_policy is not None:
        for pack in COMPLIANCE_PACKS:
            acknowledge(default_policy, f"{pack}-IAMNoInlinePolicy", why)


class AirflowEnvironment(Construct):
    """An MWAA environment with private web server access in exactly two private subnets.

    - ``key``: a customer-managed key for the environment and its source bucket (the same key
      for both: MWAA user guide, "Create an Amazon S3 bucket for Amazon MWAA"), whose policy
      admits CloudWatch Logs for the environment's log groups only ("Using customer managed keys
      for encryption": the logs service principal with a ``kms:EncryptionContext:aws:logs:arn``
      condition).
    - ``bucket``: the source bucket: versioned and public access blocked as MWAA requires
      ("Working with DAGs on Amazon MWAA"), KMS, TLS only, access-logged.
    - ``security_group``: all traffic between its members, as MWAA requires ("Security in your
      VPC on Amazon MWAA": a self-referencing inbound rule; the database and web server VPC
      endpoints MWAA creates use this group, on 5432 and 443), and outbound only that plus HTTPS
      (VPC endpoints and S3; the user guide's example allows all outbound traffic).
    - ``role``: the execution role, with the user guide's customer-managed-key policy scoped to
      this environment ("Amazon MWAA execution role") and a trust limited to this account and
      environment ("Cross-service confused deputy prevention").

    ``plugins``/``requirements``: None leaves the path out (MWAA needs an object version with
    every path: MWAA API reference, CreateEnvironment), so a first deploy works before anything
    is uploaded.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment_name: str,
        airflow_version: str,
        sizing: Sizing,
        log_level: str,
        maintenance_window_start: str,
        vpc: ec2.IVpc,
        subnets: Sequence[ec2.ISubnet],
        endpoint_security_group: ec2.ISecurityGroup,
        source_bucket_name: str,
        access_logs: s3.IBucket,
        key_alias: str,
        role_name: str,
        plugins: S3Artifact | None,
        requirements: S3Artifact | None,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        if len(subnets) != 2 or len({s.availability_zone for s in subnets}) != 2:
            raise ValueError("MWAA needs exactly two private subnets in different AZs")
        stack = cdk.Stack.of(self)
        self.environment_name = environment_name
        self.environment_arn = stack.format_arn(
            service="airflow", resource="environment", resource_name=environment_name
        )
        log_groups = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"airflow-{environment_name}-*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        key = PurposeKey(
            self,
            "Key",
            alias=key_alias,
            description=f"{environment_name}: MWAA environment and its source bucket",
            removal_policy=removal_policy,
        )
        self.key = key.key
        key.admit_log_group(f"airflow-{environment_name}-*", sid="AirflowLogGroups")

        self.bucket = SecureBucket(
            self,
            "Source",
            bucket_name=source_bucket_name,
            encryption_key=self.key,
            access_logs=access_logs,
            removal_policy=removal_policy,
            noncurrent_version_days=SOURCE_NONCURRENT_DAYS,
        ).bucket

        self.security_group = closed_group(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"MWAA {environment_name}: its own members, HTTPS out",
        )
        group = self.security_group
        group.add_ingress_rule(group, ec2.Port.all_traffic(), "MWAA components (self-reference)")
        group.add_egress_rule(group, ec2.Port.all_traffic(), "MWAA components (self-reference)")
        group.add_egress_rule(
            endpoint_security_group, ec2.Port.tcp(HTTPS), "HTTPS to the interface endpoints"
        )
        allow_https_to_s3(group, "HTTPS to S3 (gateway)")
        for pack in COMPLIANCE_PACKS:
            acknowledge(
                group,
                f"{pack}-EC2RestrictedCommonPorts",
                "The only ingress rule's source is this security group itself, which MWAA "
                "requires (its components and the database/web server endpoints it creates use "
                "the group); nothing outside the group is admitted.",
            )

        confused_deputy = {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": self.environment_arn},
        }
        self.role = iam.Role(
            self,
            "Role",
            role_name=role_name,
            assumed_by=iam.CompositePrincipal(
                *(iam.ServicePrincipal(p, conditions=confused_deputy) for p in MWAA_PRINCIPALS)
            ),
            description=f"MWAA {environment_name}: execution role of its scheduler and tasks",
        )
        self.policy = self._baseline_policy(log_groups)

        def module_logs() -> mwaa.CfnEnvironment.ModuleLoggingConfigurationProperty:
            return mwaa.CfnEnvironment.ModuleLoggingConfigurationProperty(
                enabled=True, log_level=log_level
            )

        self.environment = mwaa.CfnEnvironment(
            self,
            "Environment",
            name=environment_name,
            airflow_version=airflow_version,
            environment_class=sizing.environment_class,
            min_workers=sizing.min_workers,
            max_workers=sizing.max_workers,
            schedulers=sizing.schedulers,
            execution_role_arn=self.role.role_arn,
            kms_key=self.key.key_arn,
            source_bucket_arn=self.bucket.bucket_arn,
            dag_s3_path=DAGS_PATH,
            plugins_s3_path=plugins.path if plugins else None,
            plugins_s3_object_version=plugins.version if plugins else None,
            requirements_s3_path=requirements.path if requirements else None,
            requirements_s3_object_version=requirements.version if requirements else None,
            webserver_access_mode="PRIVATE_ONLY",
            network_configuration=mwaa.CfnEnvironment.NetworkConfigurationProperty(
                security_group_ids=[group.security_group_id],
                subnet_ids=[s.subnet_id for s in subnets],
            ),
            logging_configuration=mwaa.CfnEnvironment.LoggingConfigurationProperty(
                dag_processing_logs=module_logs(),
                scheduler_logs=module_logs(),
                task_logs=module_logs(),
                webserver_logs=module_logs(),
                worker_logs=module_logs(),
            ),
            weekly_maintenance_window_start=maintenance_window_start,
        )
        # MWAA checks the role's access to the bucket, queues and key while it creates.
        self.environment.node.add_dependency(self.policy)

    def _baseline_policy(self, log_groups: str) -> iam.ManagedPolicy:
        """The user guide's execution role policy for a customer managed key ("Amazon MWAA
        execution role", Sample policy for a customer managed key), for this environment."""
        stack = cdk.Stack.of(self)
        bucket, objects = self.bucket.bucket_arn, self.bucket.arn_for_objects("*")
        queues = stack.format_arn(
            service="sqs",
            account="*",
            resource=CELERY_QUEUES,
            arn_format=cdk.ArnFormat.NO_RESOURCE_NAME,
        )
        statements = [
            iam.PolicyStatement(
                sid="PublishEnvironmentMetrics",
                actions=["airflow:PublishMetrics"],
                resources=[self.environment_arn],
            ),
            iam.PolicyStatement(
                sid="NoBucketListing",
                effect=iam.Effect.DENY,
                actions=["s3:ListAllMyBuckets"],
                resources=[bucket, objects],
            ),
            iam.PolicyStatement(
                sid="ReadSourceBucket",
                actions=list(SOURCE_READ_ACTIONS),
                resources=[bucket, objects],
            ),
            iam.PolicyStatement(
                sid="AccountPublicAccessBlock",
                actions=["s3:GetAccountPublicAccessBlock"],
                resources=["*"],  # an account-level setting: no resource type
            ),
            iam.PolicyStatement(
                sid="EnvironmentLogs", actions=list(LOG_ACTIONS), resources=[log_groups]
            ),
            iam.PolicyStatement(
                sid="DescribeLogGroups", actions=["logs:DescribeLogGroups"], resources=["*"]
            ),
            iam.PolicyStatement(
                sid="PutMetricData", actions=["cloudwatch:PutMetricData"], resources=["*"]
            ),
            iam.PolicyStatement(
                sid="CeleryQueues", actions=list(CELERY_ACTIONS), resources=[queues]
            ),
            iam.PolicyStatement(
                sid="EnvironmentKey",
                actions=["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*", "kms:Encrypt"],
                resources=[self.key.key_arn],
                conditions={
                    "StringLike": {
                        "kms:ViaService": [
                            f"sqs.{stack.region}.amazonaws.com",
                            f"s3.{stack.region}.amazonaws.com",
                        ]
                    }
                },
            ),
        ]
        policy = iam.ManagedPolicy(
            self,
            "Policy",
            statements=statements,
            roles=[self.role],
            description=f"{self.environment_name}: MWAA's own needs",
        )
        sample = "the MWAA user guide's execution role sample ('Amazon MWAA execution role')"
        findings = {
            "Resource::*": "s3:GetAccountPublicAccessBlock (an account setting), "
            "logs:DescribeLogGroups and cloudwatch:PutMetricData name no resource; "
            f"all three are in {sample}.",
            f"Resource::{nag_form(policy, log_groups)}": "MWAA creates one log group per log "
            f"type, airflow-<environment>-<type>; the role reaches this environment's only "
            f"({sample}).",
            f"Resource::{nag_form(policy, queues)}": "MWAA's Celery queue lives in MWAA's own "
            f"account under a generated name; {sample} names it airflow-celery-* in any "
            "account of the region.",
            f"Resource::{nag_form(policy, objects)}": "MWAA reads the DAGs, plugins.zip and "
            "requirements.txt of this environment's own source bucket.",
            "Action::kms:GenerateDataKey*": f"From {sample}: GenerateDataKey and "
            "GenerateDataKeyWithoutPlaintext on this environment's key, only through SQS and S3.",
        }
        findings |= {
            f"Action::{action}": f"The source-bucket read families of {sample} (MWAA reads the "
            "objects and checks the bucket's versioning, encryption and public access); only "
            "this environment's bucket."
            for action in SOURCE_READ_ACTIONS
        }
        acknowledge_each(
            policy, {f"AwsSolutions-IAM5[{finding}]": why for finding, why in findings.items()}
        )
        return policy


class PipelinePermissions(Construct):
    """What the pipeline's tasks may do as the environment's execution role, beyond MWAA itself.

    Read the BU's published parameters (``parameter_path``) and write its own under
    ``writable_parameter_path`` except ``protected_parameters`` (what CloudFormation publishes
    there); SageMaker jobs, models and endpoint configs named ``<prefix>*``, one endpoint;
    iam:PassRole on exactly the named roles, to SageMaker only; the given bucket prefixes and
    their keys; this BU's MLflow; with ``cluster``, its rules in its namespaces of the EKS
    cluster (one access entry naming a Kubernetes group, a Role and RoleBinding per namespace,
    eks:DescribeCluster on that cluster, 443 to its private endpoint).
    ``model_reader`` is a role of another stack that must read the candidates the pipeline writes.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: AirflowEnvironment,
        parameter_path: str,
        writable_parameter_path: str,
        protected_parameters: Sequence[str],
        sagemaker: SageMakerScope,
        buckets: Sequence[BucketPrefixes],
        model_reader: ModelReader,
        mlflow: MlflowAccess,
        cluster: ClusterAccess | None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        role = environment.role

        def parameter(path: str) -> str:
            return _arn(self, "ssm", f"parameter/{path.strip('/')}")

        def sagemaker_arn(kind: str, name: str) -> str:
            return _arn(self, "sagemaker", f"{kind}/{name}")

        prefixed = f"{sagemaker.name_prefix}*"
        jobs = {kind: sagemaker_arn(kind, prefixed) for kind in ("processing-job", "training-job")}
        models = sagemaker_arn("model", prefixed)
        configs = sagemaker_arn("endpoint-config", prefixed)
        update = sagemaker.endpoint
        readable = parameter(f"{parameter_path.rstrip('/')}/*")
        writable = parameter(f"{writable_parameter_path.rstrip('/')}/*")
        passed = [
            stack.format_arn(service="iam", region="", resource="role", resource_name=name)
            for name in sagemaker.passed_role_names
        ]
        statements = [
            iam.PolicyStatement(
                sid="ReadBusinessUnitParameters",
                actions=["ssm:GetParameter", "ssm:GetParameters"],
                resources=[readable],
            ),
            iam.PolicyStatement(
                sid="WritePipelineParameters", actions=["ssm:PutParameter"], resources=[writable]
            ),
            iam.PolicyStatement(
                sid="KeepPublishedParameters",
                effect=iam.Effect.DENY,
                actions=["ssm:PutParameter", "ssm:DeleteParameter"],
                resources=[parameter(p) for p in protected_parameters],
            ),
            iam.PolicyStatement(
                sid="RunJobs",
                actions=[
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                ],
                resources=list(jobs.values()),
            ),
        ]
        if update is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="CreateModelsAndConfigs",
                    actions=[
                        "sagemaker:CreateModel",
                        "sagemaker:DescribeModel",
                        "sagemaker:CreateEndpointConfig",
                        "sagemaker:DescribeEndpointConfig",
                    ],
                    resources=[models, configs],
                )
            )
        created = [*jobs.values(), *((models, configs) if update is not None else ())]
        statements += [
            # A create that carries tags needs sagemaker:AddTags on the new resource (SageMaker
            # developer guide, "Provide permissions for tagging SageMaker AI resources").
            iam.PolicyStatement(
                sid="TagWhatItCreates", actions=["sagemaker:AddTags"], resources=created
            ),
            # ListTrainingJobs names no resource type (Service Authorization Reference,
            # SageMaker): the DAG finds a retried run's job by name.
            iam.PolicyStatement(
                sid="ListTrainingJobs", actions=["sagemaker:ListTrainingJobs"], resources=["*"]
            ),
        ]
        if update is not None:
            tag_key, tag_value = update.bu_tag
            statements.append(
                iam.PolicyStatement(
                    sid="DescribeWhatTheEndpointServes",
                    actions=["sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"],
                    resources=[sagemaker_arn("endpoint-config", "*"), sagemaker_arn("model", "*")],
                    conditions={"StringEquals": {f"aws:ResourceTag/{tag_key}": tag_value}},
                )
            )
        statements.append(
            iam.PolicyStatement(
                sid="ResolveTrainingImage",
                actions=["ecr:DescribeImages"],
                resources=[
                    stack.format_arn(
                        service="ecr",
                        resource="repository",
                        resource_name=sagemaker.image_repository,
                    )
                ],
            )
        )
        alarms = None
        if update is not None:
            alarms = stack.format_arn(
                service="cloudwatch",
                resource="alarm",
                resource_name=f"{update.alarm_prefix}*",
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            )
            statements += [
                iam.PolicyStatement(
                    sid="ReadRollbackAlarms",
                    actions=["cloudwatch:DescribeAlarms"],
                    resources=[alarms],
                ),
                iam.PolicyStatement(
                    sid="EndpointConfigKeys",
                    actions=["kms:CreateGrant", "kms:DescribeKey"],
                    resources=[key.key_arn for key in update.endpoint_keys],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                ),
                iam.PolicyStatement(
                    sid="DeployToOneEndpoint",
                    actions=["sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpoint"],
                    resources=[sagemaker_arn("endpoint", update.endpoint_name), configs],
                ),
            ]
        statements.append(
            iam.PolicyStatement(
                sid="PassJobAndEndpointRoles" if update is not None else "PassJobRoles",
                actions=["iam:PassRole"],
                resources=passed,
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        prefix_note = "named with this BU's prefix (no BU name is a hyphen-prefix of another)"
        wildcards: dict[str, str] = {
            readable: "The BU's published parameters (core/parameters.py: bucket names, role "
            "ARNs, MLflow, HyperPod team names), this BU's path only.",
            writable: "The pipeline's own state (champion, last run) under /<bu>/pipeline/; the "
            "parameters CloudFormation publishes there are denied by the statement beside it.",
            **{
                arn: f"SageMaker {kind}s the pipeline starts, {prefix_note}."
                for kind, arn in jobs.items()
            },
        }
        if update is not None and alarms is not None:
            tag_key, tag_value = update.bu_tag
            wildcards |= {
                models: f"Candidate models the pipeline creates, {prefix_note}.",
                configs: "Endpoint configs for a blue/green update of its endpoint, "
                f"{prefix_note}.",
            }
        wildcards["*"] = (
            "sagemaker:ListTrainingJobs names no resource type (Service Authorization "
            "Reference); it returns names and states only."
        )
        if update is not None and alarms is not None:
            wildcards |= {
                sagemaker_arn("endpoint-config", "*"): "Describe only, and only configs tagged "
                f"{tag_key}={tag_value}: CloudFormation names the endpoint's first config itself.",
                sagemaker_arn("model", "*"): "Describe only, and only models tagged "
                f"{tag_key}={tag_value}: CloudFormation names the endpoint's first model itself.",
                alarms: "The endpoints stack's alarms (CloudFormation names them <stack>-...); "
                "describe only, to name them as the update's auto-rollback alarms.",
            }
        for access in buckets:
            statements += self._bucket_statements(access)
            for prefix in (*access.read, *access.read_write):
                arn = _object_arn(self, access.bucket_name, f"{prefix}*")
                wildcards[arn] = (
                    f"Objects under {prefix} of this BU's bucket {access.bucket_name}, named by "
                    "the pipeline's run at run time."
                )
        if cluster is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="DescribeTheCluster",
                    actions=["eks:DescribeCluster"],
                    resources=[cluster.cluster.cluster_arn],
                )
            )
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            statements=statements,
            roles=[role],
            description=f"{environment.environment_name}: the pipeline's tasks",
        )
        acknowledge_each(
            self.policy,
            {
                f"AwsSolutions-IAM5[Resource::{nag_form(self, arn)}]": why
                for arn, why in wildcards.items()
            },
        )
        environment.environment.node.add_dependency(self.policy)

        mlflow.grant_access(role)
        _inline_default_policy(
            role,
            "The MLflow stack's grant_access writes its data-plane actions on this BU's tracking "
            "server into the role's inline default policy.",
        )

        self.reader_policy = self._model_reader(model_reader)
        self.access_entry: eks.CfnAccessEntry | None = None
        self.rbac: PipelineRbac | None = None
        if cluster is not None:
            self.access_entry = self._cluster_access(environment, cluster)

    def _bucket_statements(self, access: BucketPrefixes) -> list[iam.PolicyStatement]:
        name, label = access.bucket_name, access.label
        prefixes = [*access.read, *access.read_write]
        statements = [
            iam.PolicyStatement(
                sid=f"List{label}",
                actions=["s3:ListBucket"],
                resources=[_bucket_arn(self, name)],
                conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
            ),
            iam.PolicyStatement(
                sid=f"UseKeyOf{label}",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[access.key.key_arn],
                conditions={
                    "StringEquals": {
                        "kms:ViaService": f"s3.{cdk.Stack.of(self).region}.amazonaws.com"
                    }
                },
            ),
        ]
        if access.read:
            statements.append(
                iam.PolicyStatement(
                    sid=f"Read{label}",
                    actions=["s3:GetObject"],
                    resources=[_object_arn(self, name, f"{p}*") for p in access.read],
                )
            )
        if access.read_write:
            statements.append(
                iam.PolicyStatement(
                    sid=f"ReadWrite{label}",
                    actions=[
                        "s3:GetObject",
                        "s3:PutObject",
                        "s3:DeleteObject",
                        "s3:AbortMultipartUpload",
                    ],
                    resources=[_object_arn(self, name, f"{p}*") for p in access.read_write],
                )
            )
        return statements

    def _model_reader(self, reader: ModelReader) -> iam.ManagedPolicy:
        """Read access for ``reader`` on the pipeline's candidates, in a policy of this stack
        attached by role name (the role's own stack stays unchanged)."""
        objects = _object_arn(self, reader.bucket_name, f"{reader.prefix}*")
        policy = iam.ManagedPolicy(
            self,
            "ModelReader",
            statements=[
                iam.PolicyStatement(
                    sid="ReadPipelineModels", actions=["s3:GetObject"], resources=[objects]
                ),
                iam.PolicyStatement(
                    sid="ListPipelineModels",
                    actions=["s3:ListBucket"],
                    resources=[_bucket_arn(self, reader.bucket_name)],
                    conditions={"StringLike": {"s3:prefix": [f"{reader.prefix}*"]}},
                ),
                iam.PolicyStatement(
                    sid="DecryptPipelineModels",
                    actions=["kms:Decrypt"],
                    resources=[reader.key.key_arn],
                ),
            ],
            roles=[iam.Role.from_role_name(self, "Reader", reader.role_name)],
            description=f"{reader.role_name}: read the pipeline's models",
        )
        acknowledge(policy, f"AwsSolutions-IAM5[Resource::{nag_form(policy, objects)}]", reader.why)
        return policy

    def _cluster_access(
        self, environment: AirflowEnvironment, cluster: ClusterAccess
    ) -> eks.CfnAccessEntry:
        """One access entry for the role (EKS allows one per principal and cluster) that maps
        it to the Kubernetes group ``cluster.group`` and associates no access policy, the Role
        and RoleBinding of that group in each namespace, and 443 to the private endpoint.

        The L1 entry (aws-cdk-lib 2.275's ``aws_eks_v2.AccessEntry`` sets no Kubernetes groups)
        keeps the path, so the logical ID, of the L2 entry it replaces: a deployed entry is
        updated in place (the registry schema's create-only properties are ``ClusterName``,
        ``PrincipalArn`` and ``Type``), not created anew beside the old one, which EKS would
        refuse for the same principal. ``Type`` stays unset as before (EKS makes it STANDARD,
        "Create access entries"): setting it would replace the entry."""
        holder = Construct(self, "TeamAccess")  # the id (and path) of the L2 entry
        entry = eks.CfnAccessEntry(
            holder,
            "Resource",
            cluster_name=cluster.cluster.cluster_name,
            principal_arn=environment.role.role_arn,
            kubernetes_groups=[cluster.group],
        )
        self.rbac = PipelineRbac(
            self,
            "Rbac",
            cluster=cluster.cluster,
            name=cluster.group,
            group=cluster.group,
            rules=cluster.rules,
        )
        # The Roles exist before the entry maps the role to their group, and an entry that
        # still held the old access policy loses it only once they do.
        for manifest in self.rbac.manifests.values():
            entry.node.add_dependency(manifest)
        ec2.CfnSecurityGroupIngress(
            self,
            "ControlPlaneIngress",
            group_id=cluster.control_plane_security_group.security_group_id,
            source_security_group_id=environment.security_group.security_group_id,
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            description=f"MWAA {environment.environment_name} to the Kubernetes API",
        )
        return entry
