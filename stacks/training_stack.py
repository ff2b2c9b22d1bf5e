"""Training stack: the BU's training image repository, the role and security group its managed
SageMaker jobs run with, and the SSM parameters `training.job` and `training.prepare` read."""

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import Construct

from core import parameters as p
from platform_constructs.published import PublishedParameters
from platform_constructs.training import ManagedJobAccess, TrainingImageRepository
from stacks._common import BuStack
from stacks.foundation import Foundation

# The stack's description (after "<bu>: "), as CloudFormation shows it.
DESCRIPTION = "training image, managed-job role and parameters"

# Images are tagged with the git SHA; each is ~10 GB of CUDA and torch, so keep a few weeks'.
KEEP_IMAGES = 30
# Buckets the managed jobs read and write: inputs, prepared data, base weights, outputs.
JOB_BUCKETS = ("data", "checkpoints", "models")


class TrainingStack(BuStack):
    def __init__(self, stage: Construct, *, base: Foundation) -> None:
        super().__init__(stage, "training", config=base.config, description=DESCRIPTION)
        config, names, network, security = self.config, self.names, base.network, base.security
        policy = self.removal_policy
        # One key for the image layers and the jobs' ML storage volumes: both are this stack's.
        self.key = self.purpose_key(
            "TrainingKey", "training", "training images and managed-job volumes"
        ).key
        self.repository = TrainingImageRepository(
            self,
            "Image",
            repository_name=names.resource("training"),
            encryption_key=self.key,
            keep_images=KEEP_IMAGES,
            removal_policy=policy,
        ).repository
        # The security stack's buckets by their (derived) names: the policy's ARNs stay literal,
        # so each cdk-nag acknowledgement names its finding exactly, before and at synth.
        buckets = [
            s3.Bucket.from_bucket_name(self, f"{b.capitalize()}Bucket", names.bucket(b))
            for b in JOB_BUCKETS
        ]
        self.jobs = ManagedJobAccess(
            self,
            "ManagedJobs",
            role_name=names.role("training-job"),
            job_name_prefix=names.resource(""),
            vpc=network.vpc,
            endpoint_security_group=network.endpoint_security_group,
            buckets=buckets,
            bucket_keys=[security.keys[b] for b in JOB_BUCKETS],
            repository=self.repository,
            volume_key=self.key,
            mlflow=base.mlflow,
        )
        self.role = self.jobs.role
        self.security_group = self.jobs.security_group
        subnet_type = network.private_subnets.subnet_type
        subnet_ids = network.vpc.select_subnets(subnet_type=subnet_type).subnet_ids
        self.parameters = PublishedParameters(
            self,
            "Parameters",
            description=f"{config.name} training",
            values={
                names.parameter(p.TRAINING_IMAGE_URI): self.repository.repository_uri,
                names.parameter(p.TRAINING_JOB_ROLE_ARN): self.role.role_arn,
                names.parameter(p.TRAINING_SUBNET_IDS): cdk.Fn.join(",", subnet_ids),
                names.parameter(p.TRAINING_SECURITY_GROUP_ID): (
                    self.security_group.security_group_id
                ),
                names.parameter(p.TRAINING_VOLUME_KEY_ARN): self.key.key_arn,
                names.parameter(p.DATA_BUCKET): names.bucket("data"),
                names.parameter(p.MODELS_BUCKET): names.bucket("models"),
                names.parameter(p.CHECKPOINTS_BUCKET): names.bucket("checkpoints"),
                names.parameter(p.DATA_KEY_ARN): security.keys["data"].key_arn,
                names.parameter(p.MODELS_KEY_ARN): security.keys["models"].key_arn,
            },
        ).parameters
