"""What every config model shares: frozen, unknown fields rejected, model-level field errors, and
the one way a validation failure is reported (``file: field.path: reason``).

Pydantic only, so the training config (`training/config.py`) reports its YAML errors the same way
without importing the BU schema.
"""

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, ValidationError


class FieldProblemError(ValueError):
    """A model-level problem that belongs to one field; the loader reports ``path``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path


class StrictModel(BaseModel):
    """Frozen, and a typo is an error (``extra="forbid"``), never a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ConfigError:
    file: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.reason}"


def validation_errors(file: str, err: ValidationError) -> list[ConfigError]:
    """One `ConfigError` per pydantic error; a `FieldProblemError` names its own field."""
    out = []
    for item in err.errors():
        loc = [str(part) for part in item["loc"]]
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, FieldProblemError):
            loc.append(cause.path)
            reason = str(cause)
        else:
            reason = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                reason = "unknown field (not in the schema)"
        out.append(ConfigError(file, ".".join(loc) or "<root>", reason))
    return out
