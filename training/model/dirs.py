"""Models and tokenizers load from local folders only: a missing folder is an error that names it
and says how to make it, never a silent attempt to download from the Hugging Face hub."""

from pathlib import Path

TINY_HINT = "python -m training.tiny --output {path}"
STAGE_HINT = "stage the Hugging Face layout (config, weights, tokenizer) there first"


def local_dir(path: str | Path, *, what: str) -> str:
    """``path`` if it is a folder; otherwise FileNotFoundError naming it and the fix."""
    folder = Path(path)
    if folder.is_dir():
        return str(path)
    hint = TINY_HINT.format(path=path) if "tiny" in folder.name else STAGE_HINT
    raise FileNotFoundError(
        f"{what} {str(path)!r} is not a local folder (create it: {hint}); "
        "this project never downloads models implicitly"
    )
