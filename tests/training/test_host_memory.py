"""`release_freed_heap` gives freed heap pages back to the OS (what the CPU step relies on)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from training.loop import host_memory

CHILD = textwrap.dedent(
    """
    import json
    from training.loop.host_memory import release_freed_heap

    def rss_mib():
        with open("/proc/self/status") as f:
            return next(int(x.split()[1]) for x in f if x.startswith("VmRSS")) / 1024

    blocks = [bytearray(b"\\x01") * (2 << 20) for _ in range(100)]  # 200 MiB, pages touched
    keep = bytearray(b"\\x02") * 4096  # above them: the heap top cannot simply shrink
    del blocks
    freed = rss_mib()
    released = release_freed_heap()
    print(json.dumps({"freed": freed, "after": rss_mib(), "released": released}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_heap_pages_go_back_to_the_os() -> None:
    # Pin glibc's thresholds so the 2 MiB blocks live in the heap and nothing trims on free:
    # the state a long training step leaves behind.
    env = {
        **os.environ,
        "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
        "MALLOC_TRIM_THRESHOLD_": str(1 << 40),
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    )
    r = json.loads(out.stdout)
    assert r["released"] is True
    assert r["freed"] - r["after"] > 150, r  # of the 200 MiB freed but still resident


def test_is_a_harmless_no_op_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_memory, "_libc", lambda: None)
    assert host_memory.release_freed_heap() is False
