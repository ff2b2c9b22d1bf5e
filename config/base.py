"""What every config model shares: frozen, unknown fields rejected, model-level field errors."""

from pydantic import BaseModel, ConfigDict


class FieldProblemError(ValueError):
    """A model-level problem that belongs to one field; the loader reports ``path``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path


class StrictModel(BaseModel):
    """Frozen, and a typo is an error (``extra="forbid"``), never a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
