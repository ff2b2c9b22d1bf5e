"""cdk.json configures every feature flag of the pinned aws-cdk-lib, so `cdk synth` opens with no
"N feature flags are not configured" notice and an upgrade never changes behaviour silently.

Flags this app has adopted are true; the others are pinned at the behaviour they have when
unset (false, and "strong" cross-stack references): pinning them changed no template (checked
by synthesizing every BU before and after). Adopting one is a change to review with
`make replacements`."""

import json
import tarfile
from pathlib import Path

import aws_cdk

ROOT = Path(__file__).resolve().parents[2]


def _recommended_flags() -> dict[str, object]:
    (tarball,) = (Path(aws_cdk.__file__).parent / "_jsii").glob("aws-cdk-lib@*.jsii.tgz")
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/recommended-feature-flags.json")
        assert member is not None
        return json.load(member)


def test_every_flag_of_the_pinned_cdk_is_configured() -> None:
    context = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    missing = sorted(set(_recommended_flags()) - set(context))
    assert missing == [], f"set these in cdk.json (their unset behaviour, or adopt them): {missing}"


def test_flags_not_adopted_keep_their_unset_behaviour() -> None:
    context = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    assert context["@aws-cdk/core:defaultCrossStackReferences"] == "strong"
    values = {v for k, v in context.items() if k != "@aws-cdk/core:target-partitions"}
    assert values <= {True, False, "strong"}
