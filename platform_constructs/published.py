"""SSM parameters a stack publishes for clients: names from ``core.parameters``, never typed."""

from collections.abc import Mapping

from aws_cdk import aws_ssm as ssm
from constructs import Construct


def _construct_id(name: str) -> str:
    """``/fraud/training/image-uri`` -> ``TrainingImageUri`` (the same in every BU)."""
    local = name.lstrip("/").split("/", 1)[-1]
    return "".join(part.capitalize() for part in local.replace("/", "-").split("-"))


def string_parameters(
    scope: Construct, entries: Mapping[str, tuple[str, str, str | None]]
) -> dict[str, ssm.StringParameter]:
    """The one way a stack publishes an SSM parameter: full parameter name -> (construct id,
    value or token, description or None), each a String parameter under ``scope``. Stacks
    whose parameters were deployed before `PublishedParameters` existed keep their construct
    ids (a new id would replace a parameter whose fixed name then collides)."""
    return {
        name: ssm.StringParameter(
            scope, construct_id, parameter_name=name, string_value=value, description=description
        )
        for name, (construct_id, value, description) in entries.items()
    }


class PublishedParameters(Construct):
    """One String parameter per entry of ``values`` (full parameter name -> value or token).

    Plain String parameters, not SecureString: they hold names, IDs and ARNs that a data
    scientist may read, never secrets, and CloudFormation cannot create SecureStrings.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, values: Mapping[str, str], description: str
    ) -> None:
        super().__init__(scope, construct_id)
        self.parameters = string_parameters(
            self,
            {
                name: (_construct_id(name), value, f"{description}: {name.rsplit('/', 1)[-1]}")
                for name, value in values.items()
            },
        )
