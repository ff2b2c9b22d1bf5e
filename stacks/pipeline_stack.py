"""Pipeline stack: the BU's model pipeline on Amazon MWAA (a BU with a `pipeline` section).

The environment, its source bucket, key, security group and execution role
(``platform_constructs.mwaa``), translated from the config's ``pipeline`` section; the pipeline's
permissions on SageMaker, S3, SSM, MLflow and, on the BU's EKS cluster, Kubernetes RBAC for the
calls it makes in the namespace of the team it trains in (HyperPod backend) and of the endpoint
it deploys to (an endpoint on HyperPod); the SSM parameters the upload target and the DAG read.
Deploys after the stacks whose resources it names: training (the job role it passes), endpoints
(the endpoint it updates and the endpoint role it lets read candidate models), HyperPod (the
cluster it submits or deploys to, its kubectl provider, and the inference operator role it lets
read candidate models) and MLflow.
"""

import aws_cdk as cdk
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from config.pipeline import OUTPUT_PREFIX, Pipeline
from core import parameters as p
from core.naming import BU_TAG_KEY
from core.workload_apis import HYPERPOD_PYTORCH_JOB, INFERENCE_ENDPOINT_CONFIG
from platform_constructs.mwaa import (
    PLUGINS_PATH,
    REQUIREMENTS_PATH,
    AirflowEnvironment,
    BucketPrefixes,
    ClusterAccess,
    EndpointUpdate,
    ModelReader,
    PipelinePermissions,
    S3Artifact,
    SageMakerScope,
    Sizing,
)
from platform_constructs.pipeline_rbac import KubeRule
from platform_constructs.published import PublishedParameters
from stacks._common import BuStack
from stacks.foundation import Foundation
from stacks.hyperpod_stack import HyperPodStack
from stacks.security_stack import SecurityStack

# Weekly maintenance (MWAA applies patches then; the environment may be unavailable for a
# while): Saturday 03:00 UTC, off the working week and the example BUs' Monday retraining.
MAINTENANCE_WINDOW_START = "SAT:03:00"
# Schedulers per environment class: 1 on mw1.micro, 2 on the others, the values MWAA itself
# defaults to (MWAA API reference, CreateEnvironment, Schedulers: "accepts values from 2 to 5.
# Defaults to 2 for all environment sizes except mw1.micro, which defaults to 1").
SCHEDULERS = {"mw1.micro": 1}
DEFAULT_SCHEDULERS = 2


def schedulers(environment_class: str) -> int:
    return SCHEDULERS.get(environment_class, DEFAULT_SCHEDULERS)


def training_rules() -> tuple[KubeRule, ...]:
    """What the HyperPod training backend calls in its team's namespace: POST (create) and GET
    (get) of HyperPodPyTorchJobs; the job is named for the run, so not by name here."""
    api = HYPERPOD_PYTORCH_JOB
    return (KubeRule(api.group, api.plural, ("create", "get")),)


def deploy_rules(object_name: str) -> tuple[KubeRule, ...]:
    """What the HyperPod deploy target calls in the endpoint's namespace: GET (get) and PUT
    (update) of the one InferenceEndpointConfig ``object_name``."""
    return (
        KubeRule(
            INFERENCE_ENDPOINT_CONFIG.group,
            INFERENCE_ENDPOINT_CONFIG.plural,
            ("get", "update"),
            (object_name,),
        ),
    )


class PipelineStack(BuStack):
    def __init__(
        self,
        stage: Construct,
        *,
        base: Foundation,
        pipeline: Pipeline,
        hyperpod: HyperPodStack | None,
    ) -> None:
        super().__init__(
            stage,
            "pipeline",
            config=base.config,
            description=f"model pipeline on Amazon MWAA (Airflow {pipeline.airflow_version})",
        )
        config, names, network, security = self.config, self.names, base.network, base.security
        mlflow = base.mlflow
        if mlflow is None:  # the schema refuses a pipeline without MLflow; this says why here
            raise ValueError(f"{config.name}: the pipeline registers models in MLflow")
        environment_name = names.resource("airflow")

        # Two private subnets in different AZs (MWAA allows exactly two): the config's first two.
        azs = list(config.network.availability_zones[:2])
        subnets = network.vpc.select_subnets(
            subnet_type=network.private_subnets.subnet_type, availability_zones=azs
        ).subnets
        self.airflow = AirflowEnvironment(
            self,
            "Airflow",
            environment_name=environment_name,
            airflow_version=pipeline.airflow_version,
            sizing=Sizing(
                environment_class=pipeline.environment_class,
                min_workers=pipeline.min_workers,
                max_workers=pipeline.max_workers,
                schedulers=schedulers(pipeline.environment_class),
            ),
            log_level=pipeline.log_level,
            maintenance_window_start=MAINTENANCE_WINDOW_START,
            vpc=network.vpc,
            subnets=subnets,
            endpoint_security_group=network.endpoint_security_group,
            source_bucket_name=names.airflow_bucket(),
            access_logs=security.access_logs,
            key_alias=names.key_alias("pipeline"),
            role_name=names.role("pipeline-execution"),
            plugins=(
                S3Artifact(PLUGINS_PATH, pipeline.plugins_version)
                if pipeline.plugins_version
                else None
            ),
            requirements=(
                S3Artifact(REQUIREMENTS_PATH, pipeline.requirements_version)
                if pipeline.requirements_version
                else None
            ),
            removal_policy=self.removal_policy,
        )

        # What the pipeline does on the cluster, per namespace: the training team's (HyperPod
        # backend) and the HyperPod endpoint's (deploy.namespace, set for an endpoint on
        # HyperPod only); one namespace may be both.
        rules: dict[str, tuple[KubeRule, ...]] = {}
        if pipeline.train.backend == "hyperpod":
            if config.hyperpod is None:
                raise ValueError(f"{config.name}: the hyperpod backend needs the HyperPod stack")
            for team in config.hyperpod.teams:
                if team.name == pipeline.train.team:
                    rules[team.namespace] = training_rules()
        on_hyperpod = pipeline.deploy.namespace is not None
        if on_hyperpod:
            namespace = str(pipeline.deploy.namespace)
            # The object `python -m inference.hyperpod apply` made: <bu>-<endpoint>.
            deployed = deploy_rules(names.resource(pipeline.deploy.endpoint))
            rules[namespace] = rules.get(namespace, ()) + deployed
        cluster = None
        if rules:
            if hyperpod is None:
                raise ValueError(f"{config.name}: the pipeline works on the HyperPod cluster")
            cluster = ClusterAccess(
                cluster=self._cluster(hyperpod),
                group=names.resource("pipeline"),
                rules=rules,
                control_plane_security_group=hyperpod.security_group,
            )
            # Also what orders the Roles after the namespaces: the team namespaces are the
            # HyperPod stack's (task governance, the teams' objects); `default` the cluster's.
            self.add_stack_dependency(hyperpod)
        published = {
            names.parameter(p.PIPELINE_ENVIRONMENT_NAME): environment_name,
            names.parameter(p.PIPELINE_EXECUTION_ROLE_ARN): self.airflow.role.role_arn,
            names.parameter(p.PIPELINE_SOURCE_BUCKET): names.airflow_bucket(),
        }
        self.permissions = PipelinePermissions(
            self,
            "Permissions",
            environment=self.airflow,
            parameter_path=names.parameter(""),
            writable_parameter_path=names.parameter("pipeline"),
            protected_parameters=list(published),
            sagemaker=SageMakerScope(
                name_prefix=names.resource(""),
                passed_role_names=(
                    (names.role("training-job"),)
                    if on_hyperpod
                    else (names.role("training-job"), names.role("endpoint-execution"))
                ),
                image_repository=names.resource("training"),
                endpoint=(
                    None
                    if on_hyperpod
                    else EndpointUpdate(
                        endpoint_name=names.resource(pipeline.deploy.endpoint),
                        bu_tag=(BU_TAG_KEY, config.name),
                        alarm_prefix=names.stack("endpoints"),
                        endpoint_keys=(security.keys["models"], security.keys["inference-capture"]),
                    )
                ),
            ),
            buckets=[
                BucketPrefixes(
                    label="Data",
                    bucket_name=names.bucket("data"),
                    key=security.keys["data"],
                    read=(pipeline.data_prefix,),
                    read_write=(OUTPUT_PREFIX,),
                ),
                BucketPrefixes(
                    label="Models",
                    bucket_name=names.bucket("models"),
                    key=security.keys["models"],
                    read_write=(OUTPUT_PREFIX,),
                ),
            ],
            model_reader=self._model_reader(security, on_hyperpod=on_hyperpod),
            mlflow=mlflow,
            cluster=cluster,
        )
        self.parameters = PublishedParameters(
            self, "Parameters", description=f"{config.name} pipeline", values=published
        ).parameters
        cdk.CfnOutput(self, "EnvironmentName", value=environment_name)
        cdk.CfnOutput(self, "SourceBucket", value=names.airflow_bucket())
        cdk.CfnOutput(
            self,
            "WebserverUrl",
            description="the Airflow UI, reachable from inside the VPC only (PRIVATE_ONLY)",
            value=self.airflow.environment.attr_webserver_url,
        )

    def _cluster(self, hyperpod: HyperPodStack) -> eks.ICluster:
        """The BU's cluster by its derived name (no export of the cluster; the stack dependency
        orders it), with the HyperPod stack's kubectl provider, which applies the pipeline's
        Roles: its service token is this stack's one import from it besides the control-plane
        security group."""
        name = self.names.resource("eks")
        provider = hyperpod.eks.cluster.kubectl_provider
        if provider is None:  # the HyperPod stack's cluster always has one
            raise ValueError(f"{name}: the HyperPod stack's cluster has no kubectl provider")
        return eks.Cluster.from_cluster_attributes(
            self,
            "EksCluster",
            cluster_name=name,
            kubectl_provider=eks.KubectlProvider.from_kubectl_provider_attributes(
                self, "KubectlProvider", service_token=provider.service_token
            ),
        )

    def _model_reader(self, security: SecurityStack, *, on_hyperpod: bool) -> ModelReader:
        """Who loads a candidate from the pipeline's prefix of the models bucket: the SageMaker
        endpoint's execution role, or (an endpoint on HyperPod) the inference operator's role.
        The operator's S3 mounts use the Mountpoint CSI driver's role, which reads the whole
        models bucket already (platform_constructs/hyperpod_inference.py); the operator's own
        role holds AWS's managed policy and the TLS-bucket grants there, nothing on the models
        bucket's key, so it gets this read of the pipeline's prefix (and only that)."""
        names = self.names
        if on_hyperpod:
            role = "hyperpod-inference"
            why = (
                "The HyperPod inference operator's role reads the candidate models the "
                "pipeline writes under its prefix of this BU's models bucket (the endpoint's "
                "InferenceEndpointConfig is re-applied with one), read only."
            )
        else:
            role = "endpoint-execution"
            why = (
                "The endpoint role reads the candidate models the pipeline writes under its "
                "prefix of this BU's models bucket (an endpoint update loads them), read only."
            )
        return ModelReader(
            role_name=names.role(role),
            bucket_name=names.bucket("models"),
            prefix=OUTPUT_PREFIX,
            key=security.keys["models"],
            why=why,
        )
