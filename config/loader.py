"""Load BU config files, validate each against the schema and all of them against each other.

Every problem becomes one ``file: field.path: reason`` line. The CLI, ``app.py`` and the tests
share this one code path, so what ``make validate`` accepts is exactly what synthesizes.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from config.base import ConfigError, validation_errors
from config.schema import BusinessUnitConfig

CONFIG_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class LoadedConfig:
    file: Path
    config: BusinessUnitConfig


class ConfigInvalidError(Exception):
    """Raised by :func:`load_valid` with every problem found, not just the first."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = list(errors)


def config_files(directory: Path = CONFIG_DIR) -> list[Path]:
    """The BU files of a directory: every ``*.yaml``/``*.yml``, sorted for stable stage order.

    A missing directory has none (and :func:`load_all` reports that as an error)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in {".yaml", ".yml"})


def load_file(path: Path) -> tuple[BusinessUnitConfig | None, list[ConfigError]]:
    """Parse and validate one file on its own."""
    file = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        return None, [ConfigError(file, "<file>", f"cannot read: {err.strerror}")]
    except yaml.YAMLError as err:
        return None, [ConfigError(file, "<yaml>", f"not valid YAML: {err}".replace("\n", " "))]
    return validate_raw(file, raw)


def validate_raw(file: str, raw: object) -> tuple[BusinessUnitConfig | None, list[ConfigError]]:
    """Validate already-parsed fields (what a file holds, or what ``config new`` will write)."""
    if not isinstance(raw, dict):
        return None, [ConfigError(file, "<root>", "expected a mapping of fields")]
    try:
        return BusinessUnitConfig.model_validate(raw), []
    except ValidationError as err:
        return None, validation_errors(file, err)


def cross_file_errors(loaded: Iterable[LoadedConfig]) -> list[ConfigError]:
    """Rules that span files: unique names, no overlapping CIDRs in one account and region."""
    errors: list[ConfigError] = []
    seen: list[LoadedConfig] = []
    for item in loaded:
        cfg, file = item.config, str(item.file)
        for other in seen:
            if other.config.name == cfg.name:
                errors.append(
                    ConfigError(file, "name", f"duplicate BU name {cfg.name!r} (also {other.file})")
                )
            same_place = (other.config.account, other.config.region) == (cfg.account, cfg.region)
            if same_place and other.config.network.cidr.overlaps(cfg.network.cidr):
                errors.append(
                    ConfigError(
                        file,
                        "network.cidr",
                        f"{cfg.network.cidr} overlaps {other.config.network.cidr} of BU "
                        f"{other.config.name!r} ({other.file}) in {cfg.account}/{cfg.region}",
                    )
                )
        seen.append(item)
    return errors


def load_all(paths: Sequence[Path]) -> tuple[list[LoadedConfig], list[ConfigError]]:
    """Every valid config and every problem; a set is usable only when the problems are empty."""
    loaded: list[LoadedConfig] = []
    errors: list[ConfigError] = []
    if not paths:
        errors.append(ConfigError("<config>", "<files>", "no business-unit config files found"))
    for path in dict.fromkeys(paths):  # a file named twice is still one BU
        cfg, problems = load_file(path)
        errors.extend(problems)
        if cfg is not None:
            loaded.append(LoadedConfig(path, cfg))
    errors.extend(cross_file_errors(loaded))
    return loaded, errors


def load_valid(paths: Sequence[Path]) -> list[BusinessUnitConfig]:
    """The validated configs, or :class:`ConfigInvalidError` listing every problem."""
    loaded, errors = load_all(paths)
    if errors:
        raise ConfigInvalidError(errors)
    return [item.config for item in loaded]
