"""Region -> availability-zone names, kept in the repo so synthesis never looks AZs up.

An explicit account in a stack's env makes ``ec2.Vpc`` ask AWS for the AZs (a context
lookup), which fails offline; the configs name their AZs and are checked against this table.
Add a region here (from ``aws ec2 describe-availability-zones``) before a BU may use it.
"""

AVAILABILITY_ZONES: dict[str, tuple[str, ...]] = {
    "us-east-1": tuple(f"us-east-1{s}" for s in "abcdef"),
    "us-east-2": tuple(f"us-east-2{s}" for s in "abc"),
    "us-west-2": tuple(f"us-west-2{s}" for s in "abcd"),
    "ca-central-1": ("ca-central-1a", "ca-central-1b", "ca-central-1d"),
    "eu-west-1": tuple(f"eu-west-1{s}" for s in "abc"),
    "eu-west-2": tuple(f"eu-west-2{s}" for s in "abc"),
    "eu-central-1": tuple(f"eu-central-1{s}" for s in "abc"),
    "eu-north-1": tuple(f"eu-north-1{s}" for s in "abc"),
    "ap-northeast-1": ("ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"),
    "ap-southeast-1": tuple(f"ap-southeast-1{s}" for s in "abc"),
    "ap-southeast-2": tuple(f"ap-southeast-2{s}" for s in "abc"),
    "ap-south-1": tuple(f"ap-south-1{s}" for s in "abc"),
}

# Every resource type the HyperPod stack writes that CloudFormation does not offer everywhere.
HYPERPOD_RESOURCE_TYPES: tuple[str, ...] = (
    "AWS::SageMaker::Cluster",
    "AWS::SageMaker::ClusterSchedulerConfig",
    "AWS::SageMaker::ComputeQuota",
    "AWS::EKS::Cluster",
    "AWS::FSx::FileSystem",
)
_SCHEDULER = "AWS::SageMaker::ClusterSchedulerConfig"
_QUOTA = "AWS::SageMaker::ComputeQuota"
# Per region of the table above: the types of HYPERPOD_RESOURCE_TYPES its CloudFormation
# registry lacks, as cfn-lint 1.58 ships it (the schemas the synth gate checks against), so a
# refusal names exactly what is missing. A test recomputes this from cfn-lint's data, so a
# cfn-lint upgrade that adds a type to a region shows up as a failing test.
MISSING_HYPERPOD_TYPES: dict[str, tuple[str, ...]] = {
    "us-east-1": (),
    "us-east-2": (_SCHEDULER,),
    "us-west-2": (_SCHEDULER,),
    "ca-central-1": (_SCHEDULER,),
    "eu-west-1": (_SCHEDULER,),
    "eu-west-2": (_SCHEDULER,),
    "eu-central-1": (),
    "eu-north-1": (_QUOTA,),
    "ap-northeast-1": (_QUOTA,),
    "ap-southeast-1": (_SCHEDULER,),
    "ap-southeast-2": (_SCHEDULER,),
    "ap-south-1": (),
}
# Regions where a BU may have a hyperpod section.
HYPERPOD_REGIONS: frozenset[str] = frozenset(
    region for region, missing in MISSING_HYPERPOD_TYPES.items() if not missing
)
