"""cfn-lint over synthesized templates: each in its stack's region, in parallel, cached by content.

The CDK policy-validation plugin (``gates.CfnLintPlugin``) runs this on every synthesis. No CDK
import here: worker processes only need cfn-lint.

Cost (cfn-lint 1.58, this app's templates): about 1 s to import cfn-lint, then about 0.8 s
to build its rule set, which ``cfnlint.api.lint`` does again on every call, and 0.1-2 s of
JSON-schema validation per template. So the linter (1) imports cfn-lint and builds the rule
set ONCE, in a background thread from the moment the gates are registered, while the app is
built (the Python side mostly waits on jsii then), (2) lints every template against that one
rule set (what the ``cfn-lint`` CLI does for many templates) in workers forked afterwards,
which inherit it, largest template first, one per core, and (3) optionally keeps each result
under the SHA-256 of (cfn-lint version, region, template bytes): an unchanged stack is never
linted twice, and any byte of difference misses.
"""

import functools
import hashlib
import json
import multiprocessing
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from multiprocessing.pool import AsyncResult, Pool
from pathlib import Path
from typing import Any

# Read from the installed distribution: importing cfnlint costs ~1 s, paid in the background.
CFN_LINT_VERSION: str = version("cfn-lint")
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


@functools.cache
def _rules() -> Any:
    """cfn-lint's default rule set, built once per process (``cfnlint.api.lint`` rebuilds it,
    reading every rule's data files, on each call)."""
    from cfnlint.config import ConfigMixIn
    from cfnlint.runner import Runner

    return Runner(ConfigMixIn(regions=[DEFAULT_REGION])).rules


def lint_template(template_path: str, region: str) -> list[Finding]:
    """cfn-lint one template against the registry schemas of ``region``: what
    ``cfnlint.api.lint(text, regions=[region])`` returns, with the rule set reused."""
    return _lint_text(Path(template_path).read_text(encoding="utf-8"), region)


def _lint_text(text: str, region: str) -> list[Finding]:
    from cfnlint.config import ConfigMixIn
    from cfnlint.decode.decode import decode_str
    from cfnlint.runner import run_template_by_data

    template, matches = decode_str(text)
    if not matches and template is not None:
        # A fresh config per template: cfn-lint stores each template's own settings in it.
        matches = list(run_template_by_data(template, ConfigMixIn(regions=[region]), _rules()))
    return [
        Finding(
            rule=match.rule.id,
            level=_LEVELS.get(match.rule.id[0], "info"),
            message=match.message,
            path=tuple(str(part) for part in getattr(match, "path", None) or ()),
        )
        for match in matches or []
    ]


def _warm_up() -> None:
    """Import cfn-lint, build its rule set and load a first schema before any template exists;
    workers forked afterwards inherit all of it."""
    _lint_text('{"Resources": {"B": {"Type": "AWS::S3::Bucket"}}}', DEFAULT_REGION)


def _start_worker() -> None:
    """An early worker: below the app's priority (building the app is the critical path), it
    loads cfn-lint while the first business unit is built."""
    os.nice(10)
    _warm_up()


class TemplateLinter:
    """Lints templates in forked workers, cfn-lint loaded once before they fork.

    Two ways to run. By default cfn-lint loads in a background thread from construction on
    (the app is built meanwhile, mostly waiting on jsii) and the workers fork when ``lint``
    is called. With ``early=True`` (app.py) the workers fork at once and load cfn-lint
    themselves at low priority; ``submit`` then hands them each stage's templates as soon as
    the stage is synthesized, so linting one business unit overlaps building the next.
    """

    def __init__(
        self, *, workers: int | None = None, cache_dir: Path | None = None, early: bool = False
    ) -> None:
        self.cache_dir = cache_dir
        self.workers = max(1, min(workers or os.cpu_count() or 1, MAX_WORKERS))
        self._pending: dict[str, AsyncResult[list[Finding]]] = {}
        self._early = early
        self._pool: Pool | None = None
        self._warming: threading.Thread | None = None
        if early and cache_dir is None:
            self._start_pool()  # nothing is cached: every template will be linted
        elif not early:
            # A daemon thread: an app whose templates are all cached never waits for it.
            self._warming = threading.Thread(target=_warm_up, name="cfn-lint-warm-up", daemon=True)
            self._warming.start()

    def _start_pool(self) -> Pool:
        if self._pool is None:
            # fork: a worker must not re-import the app's __main__ (that would start jsii).
            self._pool = multiprocessing.get_context("fork").Pool(
                self.workers, initializer=_start_worker
            )
        return self._pool

    def submit(self, jobs: Sequence[tuple[Path, str]]) -> None:
        """Start linting these templates now, largest first (early mode; otherwise a no-op);
        ``lint`` collects the results. With a cache, the workers fork at the first miss."""
        if not self._early:
            return
        for path, region in sorted(jobs, key=lambda job: -job[0].stat().st_size):
            key = self._key(path, region)
            if key not in self._pending and self._cached(key) is None:
                self._start(key, path, region)

    def _start(self, key: str, path: Path, region: str) -> None:
        pool = self._start_pool()
        self._pending[key] = pool.apply_async(lint_template, (str(path), region))

    def lint(self, jobs: Sequence[tuple[Path, str]]) -> list[list[Finding]]:
        """Findings per ``(template path, region)`` job, in order; cached results reused, and
        results of templates submitted earlier (same bytes, same region) collected."""
        keys = [self._key(path, region) for path, region in jobs]
        results: list[list[Finding] | None] = [self._cached(key) for key in keys]
        # Largest first: the long templates start early and the short ones fill in after.
        missing = sorted(
            (i for i, result in enumerate(results) if result is None),
            key=lambda i: -jobs[i][0].stat().st_size,
        )
        if self._early:
            for i in missing:  # already known to miss the cache: no second read or hash
                if keys[i] not in self._pending:
                    self._start(keys[i], *jobs[i])
            try:
                for i in missing:
                    results[i] = self._pending[keys[i]].get()
            finally:
                if self._pool is not None:
                    self._pool.terminate()
                self._pool = None
                self._pending.clear()
        elif missing:
            args = [(str(jobs[i][0]), jobs[i][1]) for i in missing]
            if self._warming is not None:
                self._warming.join()  # fork only once no other thread runs (and cfn-lint is loaded)
            if min(self.workers, len(args)) == 1:
                fresh = [lint_template(*arg) for arg in args]
            else:
                # fork: a worker must not re-import the app's __main__ (that would start jsii).
                with multiprocessing.get_context("fork").Pool(min(self.workers, len(args))) as pool:
                    fresh = pool.starmap(lint_template, args, chunksize=1)
            for i, findings in zip(missing, fresh, strict=True):
                results[i] = findings
        for i in missing:
            self._store(keys[i], results[i] or [])
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
