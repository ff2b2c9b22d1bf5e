"""The old name of ``python -m inference.parsing``: the same command, the same ``main``."""

from inference.parsing.__main__ import main, parse_args

if __name__ == "__main__":
    raise SystemExit(main(parse_args()))
