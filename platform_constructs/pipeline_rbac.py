"""Kubernetes RBAC for the model pipeline's role on the BU's EKS cluster: per namespace one
``Role`` with exactly the calls the pipeline's code makes there, bound to the Kubernetes group
its access entry names.

Why not an EKS access policy: access policies hold fixed rules that cannot be changed, and
AmazonEKSEditPolicy's rules name Kubernetes' own API groups only (``apps``, ``autoscaling``,
``batch``, ``discovery.k8s.io``, ``extensions``, ``networking.k8s.io``, ``policy`` and the core
group), no custom resource; "If the permissions in the access policies don't meet your needs,
create Kubernetes RBAC objects. Then specify Kubernetes group names for your access entries"
(EKS user guide, "Review access policy permissions"). A group name is the ``name`` of a
``kind: Group`` subject of a RoleBinding (the same page; "Create access entries").

The rules come from the code, not from a role the operators ship:

- HyperPod training backend (``pipelines.aws.AwsBackend._submit_hyperpod`` and
  ``_hyperpod_finished``, through ``training.job.cluster.HyperPodCluster``): ``get`` of the
  run's HyperPodPyTorchJob (a retried submit finds it; every sensor poke reads its status
  conditions from the object itself) and ``create`` of it. No list, watch, status subresource,
  pods, logs or events: the pipeline calls neither ``status`` nor ``logs`` nor the pre-flight
  checks of ``training.job submit``.
- HyperPod deploy target (``pipelines.hyperpod_endpoint``, through ``inference.hyperpod.read``
  and ``replace``): ``get`` and ``update`` (a PUT) of the one InferenceEndpointConfig
  ``<bu>-<endpoint>``, named in the rule (RBAC ``resourceNames``); the readiness poll reads the
  same object's status.

``tests/deploy_contract/test_pipeline_rbac_contract.py`` runs both paths against the fake
Kubernetes API server and holds every request against the synthesized rules, both ways.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import aws_eks_v2 as eks
from constructs import Construct
from kubernetes import client as k8s

from platform_constructs.hyperpod_workloads import to_manifest

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_VERSION = f"{RBAC_GROUP}/v1"


@dataclass(frozen=True)
class KubeRule:
    """One rule of a Role: ``verbs`` on ``resource`` of ``api_group``, on the objects
    ``names`` only when given (Kubernetes cannot limit a ``create`` by name: the object's name
    is not known when the request is authorized)."""

    api_group: str
    resource: str
    verbs: tuple[str, ...]
    names: tuple[str, ...] = ()

    def policy_rule(self) -> k8s.V1PolicyRule:
        return k8s.V1PolicyRule(
            api_groups=[self.api_group],
            resources=[self.resource],
            verbs=list(self.verbs),
            resource_names=list(self.names) or None,
        )


def role_objects(
    *, name: str, group: str, namespace: str, rules: Sequence[KubeRule]
) -> list[dict[str, Any]]:
    """The ``Role`` ``name`` in ``namespace`` with ``rules``, and the ``RoleBinding`` ``name``
    that grants it to the Kubernetes group ``group``."""
    metadata = k8s.V1ObjectMeta(name=name, namespace=namespace)
    role = k8s.V1Role(
        api_version=RBAC_VERSION,
        kind="Role",
        metadata=metadata,
        rules=[rule.policy_rule() for rule in rules],
    )
    binding = k8s.V1RoleBinding(
        api_version=RBAC_VERSION,
        kind="RoleBinding",
        metadata=metadata,
        role_ref=k8s.V1RoleRef(api_group=RBAC_GROUP, kind="Role", name=name),
        subjects=[k8s.RbacV1Subject(api_group=RBAC_GROUP, kind="Group", name=group)],
    )
    return [to_manifest(role), to_manifest(binding)]


class PipelineRbac(Construct):
    """Per namespace of ``rules`` one manifest (its Role and RoleBinding), applied by the
    cluster's kubectl provider. The namespaces must exist first: a team's comes with the
    HyperPod stack (task governance and the team's objects), ``default`` with the cluster."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: eks.ICluster,
        name: str,
        group: str,
        rules: Mapping[str, Sequence[KubeRule]],
    ) -> None:
        super().__init__(scope, construct_id)
        self.manifests: dict[str, eks.KubernetesManifest] = {}
        for namespace, namespace_rules in rules.items():
            self.manifests[namespace] = eks.KubernetesManifest(
                self,
                namespace,
                cluster=cluster,
                manifest=role_objects(
                    name=name, group=group, namespace=namespace, rules=namespace_rules
                ),
            )
