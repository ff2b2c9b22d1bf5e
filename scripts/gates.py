"""Read a synthesized cloud assembly's stack templates, per BU. Shared by ``make synth`` and the
test suite (the gates' report is read by ``platform_constructs.gate_report``)."""

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StackTemplate:
    bu: str
    name: str
    region: str
    path: Path

    def resources(self) -> int:
        return len(json.loads(self.path.read_text(encoding="utf-8")).get("Resources", {}))


def stack_templates(outdir: Path) -> list[StackTemplate]:
    """Every stack template of every BU stage (nested assemblies ``assembly-<bu>``)."""
    out = []
    manifest = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))
    for artifact in manifest["artifacts"].values():
        if artifact["type"] != "cdk:cloud-assembly":
            continue
        props = artifact["properties"]
        nested = outdir / props["directoryName"]
        inner = json.loads((nested / "manifest.json").read_text(encoding="utf-8"))
        for stack in inner["artifacts"].values():
            if stack["type"] != "aws:cloudformation:stack":
                continue
            region = stack["environment"].rsplit("/", 1)[-1]
            out.append(
                StackTemplate(
                    bu=props["displayName"],
                    name=stack["properties"].get("stackName", stack["displayName"]),
                    region=region,
                    path=nested / stack["properties"]["templateFile"],
                )
            )
    return out
