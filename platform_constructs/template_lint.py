"""cfn-lint over synthesized templates: each in its stack's region, in parallel, cached by content.

The CDK policy-validation plugin (``gates.CfnLintPlugin``) runs this on every synthesis. No CDK
import here: worker processes only need cfn-lint.

Cost: cfn-lint spends about 2 s of CPU per template (JSON-schema validation of every resource,
not start-up), plus about 2 s once to import it and load its rules. So the linter (1) loads
cfn-lint in a background thread from the moment the gates are registered, while the app is
built (the Python side mostly waits on jsii then), (2) lints the templates in workers forked
afterwards, which inherit the loaded cfn-lint, one per core, and (3) optionally keeps each
result under the SHA-256 of (cfn-lint version, region, template bytes): an unchanged stack is
never linted twice, and any byte of difference misses.
"""

import hashlib
import json
import multiprocessing
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cfnlint.version

CFN_LINT_VERSION: str = cfnlint.version.__version__
# cfn-lint's own default region, for a stack synthesized without an explicit region.
DEFAULT_REGION = "us-east-1"
MAX_WORKERS = 8  # each worker is a fork of the app process (memory); few apps need more
_LEVELS = {"E": "error", "W": "warning"}  # anything else (I...) is informational


@dataclass(frozen=True)
class Finding:
    """One cfn-lint match, as plain data (it crosses process boundaries and the cache)."""

    rule: str  # e.g. "E3012"
    level: str  # "error", "warning" or "info"
    message: str
    path: tuple[str, ...]  # e.g. ("Resources", "Vpc", "Properties", "CidrBlock")

    @property
    def logical_id(self) -> str | None:
        return self.path[1] if len(self.path) > 1 and self.path[0] == "Resources" else None

    @property
    def location(self) -> str:
        return "/".join(self.path[2:]) if self.logical_id else "/".join(self.path)


def lint_template(template_path: str, region: str) -> list[Finding]:
    """cfn-lint one template against the registry schemas of ``region``."""
    from cfnlint.api import lint

    text = Path(template_path).read_text(encoding="utf-8")
    return [
        Finding(
            rule=match.rule.id,
            level=_LEVELS.get(match.rule.id[0], "info"),
            message=match.message,
            path=tuple(str(part) for part in getattr(match, "path", None) or ()),
        )
        for match in lint(text, regions=[region])
    ]


def _warm_up() -> None:
    """Import cfn-lint and load its rules and schemas (cached in-process) before any template
    exists; workers forked afterwards inherit all of it."""
    from cfnlint.api import lint

    lint('{"Resources": {"B": {"Type": "AWS::S3::Bucket"}}}', regions=[DEFAULT_REGION])


class TemplateLinter:
    """Lints templates in forked workers; cfn-lint itself is loaded once, in the background,
    from construction on (the app is being built meanwhile, mostly waiting on jsii)."""

    def __init__(self, *, workers: int | None = None, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir
        self.workers = max(1, min(workers or os.cpu_count() or 1, MAX_WORKERS))
        # A daemon thread: an app whose templates are all cached never waits for it.
        self._warming = threading.Thread(target=_warm_up, name="cfn-lint-warm-up", daemon=True)
        self._warming.start()

    def lint(self, jobs: Sequence[tuple[Path, str]]) -> list[list[Finding]]:
        """Findings per ``(template path, region)`` job, in order; cached results reused."""
        keys = [self._key(path, region) for path, region in jobs]
        results: list[list[Finding] | None] = [self._cached(key) for key in keys]
        missing = [i for i, result in enumerate(results) if result is None]
        args = [(str(jobs[i][0]), jobs[i][1]) for i in missing]
        fresh: list[list[Finding]] = []
        if args:
            self._warming.join()  # fork only once no other thread runs (and cfn-lint is loaded)
            workers = min(self.workers, len(args))
            if workers == 1:
                fresh = [lint_template(*arg) for arg in args]
            else:
                # fork: a worker must not re-import the app's __main__ (that would start jsii).
                with multiprocessing.get_context("fork").Pool(workers) as pool:
                    fresh = pool.starmap(lint_template, args, chunksize=1)
        for i, findings in zip(missing, fresh, strict=True):
            results[i] = findings
            self._store(keys[i], findings)
        return [result or [] for result in results]

    def _key(self, path: Path, region: str) -> str:
        digest = hashlib.sha256(f"cfn-lint {CFN_LINT_VERSION}\n{region}\n".encode())
        digest.update(path.read_bytes())
        return digest.hexdigest()

    def _cached(self, key: str) -> list[Finding] | None:
        if self.cache_dir is None:
            return None
        try:
            raw = json.loads((self.cache_dir / f"{key}.json").read_text(encoding="utf-8"))
            return [Finding(**{**item, "path": tuple(item["path"])}) for item in raw]
        except (OSError, ValueError, TypeError, KeyError):
            return None  # absent, half-written or from another layout: lint again

    def _store(self, key: str, findings: list[Finding]) -> None:
        if self.cache_dir is None:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # Write then rename: two synths at once never read a partial entry.
        with tempfile.NamedTemporaryFile(
            "w", dir=self.cache_dir, suffix=".tmp", delete=False, encoding="utf-8"
        ) as handle:
            json.dump([asdict(finding) for finding in findings], handle)
        Path(handle.name).replace(self.cache_dir / f"{key}.json")
