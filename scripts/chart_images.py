"""The images a rendered chart makes the nodes pull, read from ``helm template`` output.

Pods name theirs in ``containers``/``initContainers``; the NVIDIA GPU operator's
``ClusterPolicy`` names its operands' images as ``repository``/``image``/``version`` per
component, and the operator creates those DaemonSets later, so a plain ``image:`` search
would miss them.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
# ClusterPolicy components the operator deploys only with `sandboxWorkloads.enabled`
# (NVIDIA/gpu-operator v26.3.1, controllers/state_manager.go, isStateEnabled).
SANDBOX_ONLY = frozenset(
    {
        "sandboxDevicePlugin",
        "kataSandboxDevicePlugin",
        "kataManager",
        "vfioManager",
        "vgpuDeviceManager",
        "vgpuManager",
        "ccManager",
    }
)
# Components whose `IsEnabled()` is false when `enabled` is not set (api/nvidia/v1,
# clusterpolicy_types.go); every other component runs unless `enabled: false`.
OFF_UNLESS_ENABLED = SANDBOX_ONLY | {"nodeStatusExporter", "gds", "gdrcopy"}

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser: renders are megabytes


@dataclass(frozen=True)
class ImageUse:
    component: str  # e.g. "DaemonSet/kube-system/nvidia-device-plugin container nvidia"
    image: str


def documents(manifests: str) -> list[dict[str, Any]]:
    """The objects of a multi-document render (empty documents dropped)."""
    return [doc for doc in yaml.load_all(manifests, Loader=_LOADER) if isinstance(doc, dict)]


def kind_count(docs: Iterable[Mapping[str, Any]], kind: str) -> int:
    return sum(1 for doc in docs if doc.get("kind") == kind)


def rendered_images(docs: Iterable[Mapping[str, Any]]) -> list[ImageUse]:
    """Every image the render's pods and ClusterPolicies make a node pull."""
    found: list[ImageUse] = []
    for doc in docs:
        name = _object_name(doc)
        if doc.get("kind") == "ClusterPolicy":
            found += cluster_policy_images(name, doc.get("spec") or {})
        else:
            found += _container_images(name, doc)
    return found


def cluster_policy_images(name: str, spec: Mapping[str, Any]) -> list[ImageUse]:
    """The operands' images, as the operator composes them (``ImagePath``: ``repository/
    image:version``, ``@version`` for a digest, ``image`` alone without repository and version),
    for the components it will deploy."""
    sandbox = (spec.get("sandboxWorkloads") or {}).get("enabled") is True
    found: list[ImageUse] = []
    for component, settings in spec.items():
        if isinstance(settings, Mapping) and _deployed(component, settings, sandbox=sandbox):
            found += _image_specs(f"{name} {component}", settings)
    return found


def foreign_images(uses: Iterable[ImageUse], allowed_prefixes: Sequence[str]) -> list[ImageUse]:
    """The images that start with none of ``allowed_prefixes`` (registry hosts and paths)."""
    return [use for use in uses if not use.image.startswith(tuple(allowed_prefixes))]


def _object_name(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    path = "/".join(str(part) for part in (meta.get("namespace"), meta.get("name")) if part)
    return f"{doc.get('kind', '?')}/{path}"


def _container_images(owner: str, node: Any) -> list[ImageUse]:
    """Containers at any depth: a Deployment's, a Job's, a CronJob's job template's."""
    found: list[ImageUse] = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key in CONTAINER_LISTS and isinstance(value, list):
                found += [
                    ImageUse(f"{owner} {key.removesuffix('s')} {c.get('name', '?')}", c["image"])
                    for c in value
                    if isinstance(c, Mapping) and isinstance(c.get("image"), str)
                ]
            else:
                found += _container_images(owner, value)
    elif isinstance(node, list):
        for item in node:
            found += _container_images(owner, item)
    return found


def _deployed(component: str, settings: Mapping[str, Any], *, sandbox: bool) -> bool:
    if component in SANDBOX_ONLY and not sandbox:
        return False
    enabled = settings.get("enabled")
    return enabled if isinstance(enabled, bool) else component not in OFF_UNLESS_ENABLED


def _image_specs(component: str, settings: Mapping[str, Any]) -> list[ImageUse]:
    """This component's image and its nested ones (the driver's ``manager``), skipping nested
    parts that are ``enabled: false``."""
    found: list[ImageUse] = []
    image = settings.get("image")
    if isinstance(image, str) and image:
        found.append(ImageUse(component, _image_path(settings, image)))
    for key, value in settings.items():
        if isinstance(value, Mapping) and value.get("enabled") is not False:
            found += _image_specs(f"{component}.{key}", value)
    return found


def _image_path(settings: Mapping[str, Any], image: str) -> str:
    repository = str(settings.get("repository") or "")
    version = str(settings.get("version") or "")
    if not repository and not version:
        return image
    separator = "@" if version.startswith("sha256:") else ":"
    return f"{repository}/{image}{separator}{version}"
