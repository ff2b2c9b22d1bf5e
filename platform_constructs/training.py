"""What a BU's managed training needs: its image repository, and the role and security group
that SageMaker Training and Processing jobs run with (least privilege, VPC only)."""

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from platform_constructs import service_roles, vpc_enis
from platform_constructs.access import MlflowAccess
from platform_constructs.gates import COMPLIANCE_PACKS, acknowledge, acknowledge_each
from platform_constructs.security_groups import HTTPS, allow_https_to_s3, closed_group

# SageMaker writes a job's container logs to these groups, one stream per `<job name>/<host>`.
JOB_LOG_GROUPS = ("/aws/sagemaker/TrainingJobs", "/aws/sagemaker/ProcessingJobs")


def _nag_arn(stack: cdk.Stack, arn: str) -> str:
    """An ARN as cdk-nag prints it: literal with an explicit env, else with pseudo parameters."""
    resolved = stack.resolve(arn)
    if isinstance(resolved, str):
        return resolved
    parts = resolved["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else f"<{p['Ref']}>" for p in parts)


class TrainingImageRepository(Construct):
    """The BU's training image repository: KMS-encrypted, immutable tags (one per git SHA),
    scanned on push, and only the newest ``keep_images`` images kept."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        repository_name: str,
        encryption_key: kms.IKey,
        keep_images: int,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.repository = ecr.Repository(
            self,
            "Repository",
            repository_name=repository_name,
            encryption=ecr.RepositoryEncryption.KMS,
            encryption_key=encryption_key,
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            image_scan_on_push=True,
            lifecycle_rules=[
                ecr.LifecycleRule(
                    description=f"keep the newest {keep_images} images",
                    max_image_count=keep_images,
                    tag_status=ecr.TagStatus.ANY,
                )
            ],
            # No empty_on_delete: it needs a Lambda custom resource; a `destroy` BU empties it.
            removal_policy=removal_policy,
        )


class ManagedJobAccess(Construct):
    """The execution role of the BU's SageMaker Training and Processing jobs, and their group.

    The role reads and writes objects in exactly the buckets given (and uses their keys), pulls
    from exactly one repository, writes the logs of jobs named ``<job_name_prefix>*`` only,
    attaches job ENIs in this VPC only, and (with ``mlflow``) logs to this BU's MLflow. The
    security group admits only the job's own containers (NCCL, the encrypted inter-container
    channel) and lets HTTPS out to the VPC endpoints and S3.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        role_name: str,
        job_name_prefix: str,
        vpc: ec2.IVpc,
        endpoint_security_group: ec2.ISecurityGroup,
        buckets: Sequence[s3.IBucket],
        bucket_keys: Sequence[kms.IKey],
        repository: ecr.IRepository,
        volume_key: kms.IKey,
        mlflow: MlflowAccess | None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)

        self.security_group = closed_group(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="SageMaker training/processing jobs: own containers and AWS endpoints",
        )
        group = self.security_group
        # NCCL and torch.distributed pick TCP ports at run time; inter-container encryption is
        # IPsec (IKE on UDP 500, then ESP). Named protocols, not "all": -1 fails the packs.
        for port, what in (
            (ec2.Port.all_tcp(), "TCP between the job's containers (NCCL, rendezvous)"),
            (ec2.Port.udp(500), "IKE for inter-container traffic encryption"),
            (ec2.Port(protocol=ec2.Protocol.ESP, string_representation="ESP"), "ESP (IPsec)"),
        ):
            group.add_ingress_rule(group, port, what)
        group.add_egress_rule(group, ec2.Port.all_traffic(), "between the job's containers")
        group.add_egress_rule(
            endpoint_security_group, ec2.Port.tcp(HTTPS), "HTTPS to the interface endpoints"
        )
        allow_https_to_s3(group, "HTTPS to S3 (gateway)")

        self.role = service_roles.service_role(
            self,
            "Role",
            service=service_roles.SAGEMAKER,
            role_name=role_name,
            description="SageMaker Training and Processing jobs of this BU",
            max_session_duration=cdk.Duration.hours(12),
        )
        log_streams = [
            stack.format_arn(
                service="logs",
                resource="log-group",
                resource_name=f"{group_name}:log-stream:{job_name_prefix}*",
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            )
            for group_name in JOB_LOG_GROUPS
        ]
        log_groups = [
            stack.format_arn(
                service="logs",
                resource="log-group",
                resource_name=group_name,
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            )
            for group_name in JOB_LOG_GROUPS
        ]
        vpc_arn = stack.format_arn(service="ec2", resource="vpc", resource_name=vpc.vpc_id)
        statements = [
            iam.PolicyStatement(
                sid="ListOwnBuckets",
                actions=["s3:ListBucket"],
                resources=[b.bucket_arn for b in buckets],
            ),
            iam.PolicyStatement(
                sid="ReadWriteOwnObjects",
                actions=[
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",  # checkpoint.keep_last prunes old steps
                    "s3:AbortMultipartUpload",
                ],
                resources=[b.arn_for_objects("*") for b in buckets],
            ),
            iam.PolicyStatement(
                sid="UseOwnBucketKeys",
                actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[k.key_arn for k in (*bucket_keys, volume_key)],
            ),
            iam.PolicyStatement(
                sid="EncryptJobVolumes",
                actions=["kms:CreateGrant"],
                resources=[volume_key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
            iam.PolicyStatement(
                sid="PullOwnImage",
                actions=list(service_roles.ECR_PULL_ACTIONS),
                resources=[repository.repository_arn],
            ),
            iam.PolicyStatement(
                sid="EcrLoginAndVpcDescribe",
                actions=["ecr:GetAuthorizationToken", *vpc_enis.DESCRIBE_ACTIONS],
                resources=["*"],  # these actions have no resource-level permissions
            ),
            iam.PolicyStatement(
                sid="JobEnisInThisVpc",
                actions=list(vpc_enis.MANAGE_ACTIONS),
                resources=["*"],  # ENIs do not exist yet; the condition pins them to this VPC
                conditions={"ArnEquals": {"ec2:Vpc": vpc_arn}},
            ),
            iam.PolicyStatement(
                sid="CreateJobLogGroups",
                actions=["logs:CreateLogGroup", "logs:DescribeLogStreams"],
                resources=log_groups,
            ),
            iam.PolicyStatement(
                sid="WriteOwnJobLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=log_streams,
            ),
        ]
        # A managed policy, not the role's inline default policy (HIPAA/NIST IAMNoInlinePolicy).
        self.policy = iam.ManagedPolicy(
            self, "Policy", statements=statements, roles=[self.role], description=role_name
        )
        findings: list[tuple[str, str]] = [
            (
                "Resource::*",
                "ecr:GetAuthorizationToken and the ec2:Describe* calls SageMaker makes to place a "
                "job's ENIs have no resource-level permissions; ENI create/delete is pinned to "
                "this BU's VPC by the ec2:Vpc condition.",
            )
        ]
        findings += [
            (
                f"Resource::{_nag_arn(stack, b.arn_for_objects('*'))}",
                "Job inputs, outputs and checkpoints are objects of this BU's own bucket, named "
                "by the job at run time; the role reaches no other bucket.",
            )
            for b in buckets
        ]
        findings += [
            (
                f"Resource::{_nag_arn(stack, arn)}",
                "SageMaker names each log stream <job name>/<host>; the role writes only the "
                "streams of jobs whose names carry this BU's prefix.",
            )
            for arn in log_streams
        ]
        acknowledge_each(
            self.policy, {f"AwsSolutions-IAM5[{finding}]": reason for finding, reason in findings}
        )

        if mlflow is not None:
            mlflow.grant_access(self.role)
            default_policy = self.role.node.try_find_child("DefaultPolicy")
            if default_policy is not None:
                for pack in COMPLIANCE_PACKS:
                    acknowledge(
                        default_policy,
                        f"{pack}-IAMNoInlinePolicy",
                        "The MLflow stack's grant_access writes its data-plane actions on this "
                        "BU's tracking server into the role's inline default policy.",
                    )
