"""Load BU config files, validate each against the schema and all of them against each other.

Every problem becomes one ``file: field.path: reason`` line. The CLI, ``app.py`` and the tests
share this one code path, so what ``make validate`` accepts is exactly what synthesizes.
"""

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from config.schema import BusinessUnitConfig
from config.yaml_source import read_yaml
from core.base import ConfigError, Loc, validation_errors

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


def display_path(path: Path) -> str:
    """``path`` as a user typed it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_file(path: Path) -> tuple[BusinessUnitConfig | None, list[ConfigError]]:
    """Parse and validate one file on its own."""
    file = display_path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        return None, [ConfigError(file, "<file>", f"cannot read: {err.strerror}")]
    return load_text(file, data)


def load_text(file: str, data: bytes) -> tuple[BusinessUnitConfig | None, list[ConfigError]]:
    """Parse and validate a file's bytes (what a file holds, or what ``config new`` will write)."""
    document, errors = read_yaml(file, data)
    if document is None:
        return None, errors
    return validate_raw(file, document.data, document.typed_scalars)


def validate_raw(
    file: str, raw: object, typed_scalars: dict[Loc, str] | None = None
) -> tuple[BusinessUnitConfig | None, list[ConfigError]]:
    """Validate already-parsed fields; ``typed_scalars`` as `config.yaml_source` reports them."""
    if not isinstance(raw, dict):
        return None, [ConfigError(file, "<root>", "expected a mapping of fields")]
    try:
        return BusinessUnitConfig.model_validate(raw), []
    except ValidationError as err:
        return None, validation_errors(file, err, typed_scalars)


def cross_file_errors(
    loaded: Iterable[LoadedConfig], focus: Collection[Path] = ()
) -> list[ConfigError]:
    """Rules that span files: unique names, no name that is another's hyphen-prefix in one
    account, no overlapping CIDRs in one account and region.

    A clash is reported against the later file of the pair, or against the ``focus`` file (the
    one being validated or written) when only one of the two is in focus, so the message names
    the file the user is changing.
    """
    errors: list[ConfigError] = []
    seen: list[LoadedConfig] = []
    focused = {p.resolve() for p in focus}
    for current in loaded:
        for earlier in seen:
            item, other = current, earlier
            if earlier.file.resolve() in focused and current.file.resolve() not in focused:
                item, other = earlier, current
            cfg, file = item.config, display_path(item.file)
            if other.config.name == cfg.name:
                errors.append(
                    ConfigError(
                        file,
                        "name",
                        f"duplicate BU name {cfg.name!r} (also {display_path(other.file)})",
                    )
                )
            prefix = _hyphen_prefix(cfg.name, other.config.name)
            if prefix is not None and other.config.account == cfg.account:
                longer = other.config.name if prefix == cfg.name else cfg.name
                errors.append(
                    ConfigError(
                        file,
                        "name",
                        f"BU {cfg.name!r} and BU {other.config.name!r} "
                        f"({display_path(other.file)}) share account {cfg.account}, and "
                        f"{longer!r} starts with {prefix + '-'!r}: a grant on {prefix}-* "
                        f"resources would reach {longer}'s too; rename one",
                    )
                )
            same_place = (other.config.account, other.config.region) == (cfg.account, cfg.region)
            if same_place and other.config.network.cidr.overlaps(cfg.network.cidr):
                errors.append(
                    ConfigError(
                        file,
                        "network.cidr",
                        f"{cfg.network.cidr} overlaps {other.config.network.cidr} of BU "
                        f"{other.config.name!r} ({display_path(other.file)}) in "
                        f"{cfg.account}/{cfg.region}",
                    )
                )
        seen.append(current)
    return errors


def _hyphen_prefix(a: str, b: str) -> str | None:
    """The shorter name when it is a hyphen-prefix of the other (``fraud``, ``fraud-ops``):
    IAM patterns such as ``endpoint/fraud-*`` cannot tell such BUs apart."""
    short, long = sorted((a, b), key=len)
    return short if long.startswith(f"{short}-") else None


def load_all(
    paths: Sequence[Path], *, context: Sequence[Path] = ()
) -> tuple[list[LoadedConfig], list[ConfigError]]:
    """Every valid config and every problem; a set is usable only when the problems are empty.

    ``context`` files (the rest of the directory when one file is validated) are checked against
    ``paths`` for clashes, but their own problems are not reported and they are not returned.
    """
    loaded: list[LoadedConfig] = []
    errors: list[ConfigError] = []
    if not paths:
        errors.append(ConfigError("<config>", "<files>", "no business-unit config files found"))
    for path in dict.fromkeys(paths):  # a file named twice is still one BU
        cfg, problems = load_file(path)
        errors.extend(problems)
        if cfg is not None:
            loaded.append(LoadedConfig(path, cfg))
    named = {p.resolve() for p in paths}
    others = [
        LoadedConfig(path, cfg)
        for path in dict.fromkeys(context)
        if path.resolve() not in named
        for cfg in [load_file(path)[0]]
        if cfg is not None
    ]
    errors.extend(cross_file_errors([*others, *loaded], focus=paths if context else ()))
    return loaded, errors


def load_valid(paths: Sequence[Path]) -> list[BusinessUnitConfig]:
    """The validated configs, or :class:`ConfigInvalidError` listing every problem."""
    loaded, errors = load_all(paths)
    if errors:
        raise ConfigInvalidError(errors)
    return [item.config for item in loaded]
