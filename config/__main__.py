"""CLI: ``python -m config validate [FILES...]`` and ``python -m config new NAME [--from X]``."""

import ipaddress
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from config.clone import clone_config
from config.loader import (
    CONFIG_DIR,
    ConfigError,
    LoadedConfig,
    config_files,
    cross_file_errors,
    display_path,
    load_all,
    load_text,
)
from config.schema import PLATFORM
from core import cli


def next_free_cidr(
    taken: list[ipaddress.IPv4Network],
    pool: ipaddress.IPv4Network = PLATFORM.cidr_pool,
    prefix: int = PLATFORM.new_bu_prefix,
) -> ipaddress.IPv4Network:
    """The first ``/prefix`` of the pool that overlaps no existing BU (in any account)."""
    for candidate in pool.subnets(new_prefix=prefix):
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise ValueError(f"the CIDR pool {pool} has no free /{prefix} left")


def _print_errors(errors: list[ConfigError]) -> int:
    for error in errors:
        print(error, file=sys.stderr)
    return 1


def cmd_validate(files: list[Path]) -> int:
    """Validate ``files`` (default: every config); a named file is still checked against the
    other BUs of its directory (names, CIDR overlaps), since it will be deployed beside them."""
    context = sorted({other for f in files for other in config_files(f.parent)})
    loaded, errors = load_all(files or config_files(), context=context)
    if errors:
        return _print_errors(errors)
    names = ", ".join(item.config.name for item in loaded)
    print(f"ok: {len(loaded)} business units valid ({names})")
    return 0


def cmd_new(name: str, source: str | None, account: str | None, directory: Path) -> int:
    """Write ``directory/<name>.yaml`` cloned from ``source`` (see `config.clone`), only once
    the written text validates on its own and beside the other BUs; then print what to
    review, one ``file: field: what`` line each."""
    loaded, errors = load_all(config_files(directory))
    if errors:
        return _print_errors(errors)
    by_name = {item.config.name: item for item in loaded}
    if source is not None and source not in by_name:
        print(f"--from {source}: no such BU in {directory}", file=sys.stderr)
        return 2
    base = by_name[source or sorted(by_name)[0]]
    target = directory / f"{name}.yaml"
    file = display_path(target)
    if target.exists() or name in by_name:
        print(f"{file}: name: BU {name!r} already exists", file=sys.stderr)
        return 1
    try:
        cidr = next_free_cidr([item.config.network.cidr for item in loaded])
    except ValueError as err:
        print(f"{file}: network.cidr: {err}", file=sys.stderr)
        return 1
    clone = clone_config(
        base.file.read_text(encoding="utf-8"),
        source=base.config,
        name=name,
        account=account,
        cidr=str(cidr),
    )
    cfg, new_errors = load_text(file, clone.text.encode("utf-8"))
    if cfg is not None:
        new_errors = cross_file_errors([*loaded, LoadedConfig(target, cfg)], focus=[target])
    if new_errors:
        return _print_errors(new_errors)
    target.write_text(clone.text, encoding="utf-8")
    print(f"wrote {file} (cidr {cidr}) from {base.config.name}; review before deploying:")
    for path, what in clone.review:
        print(f"{file}: {path}: {what}")
    return 0


@dataclass(frozen=True)
class ValidateArgs:
    """``python -m config validate``: the files to check (none: every config)."""

    files: list[Path] = field(default_factory=list, metadata={"positional": True})


@dataclass(frozen=True)
class NewArgs:
    """``python -m config new``: the new BU's name and what it is cloned from."""

    name: str = field(metadata={"positional": True})
    source: str | None = field(
        default=None,
        metadata={"flag": "--from", "help": "BU to clone (default: the first by name)"},
    )
    account: str | None = field(
        default=None, metadata={"help": "12-digit account ID (default: the source BU's)"}
    )
    config_dir: Path = field(default=CONFIG_DIR, metadata={"hidden": True})


COMMANDS = {
    "validate": cli.Subcommand(ValidateArgs, "validate BU files (default: config/*.yaml)"),
    "new": cli.Subcommand(NewArgs, "write config/NAME.yaml for a new BU"),
}


def parse_args(argv: Sequence[str] | None = None) -> ValidateArgs | NewArgs:
    args: ValidateArgs | NewArgs = cli.parse_command("config", __doc__, COMMANDS, argv)
    return args


def main(args: ValidateArgs | NewArgs) -> int:
    """Run the chosen subcommand; its exit code (argparse's own usage errors exit 2)."""
    match args:
        case ValidateArgs():
            return cmd_validate(args.files)
        case NewArgs():
            return cmd_new(args.name, args.source, args.account, args.config_dir)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
