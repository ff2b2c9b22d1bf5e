"""Hand freed CPU heap memory back to the OS between the phases of a training step.

On the CPU, tensors are plain `malloc` blocks. glibc serves the 2-25 MB activations of a decoder
layer from its heap once its dynamic mmap threshold has grown (it does after the first large
free), and keeps those pages when the tensors are freed. The lm_head phase that follows then
maps fresh `[rows, vocab]` logits blocks and a `[vocab, hidden]` gradient beside them, so resident
memory holds both. `malloc_trim(0)` returns every whole free page of every arena (madvise), and
a freed page costs one page fault when reused. Measured on `make bench-train`'s shapes: 11-18 ms
a call inside a step (about 1.5% of a shape-A step, 0.8% of shape B, inside run-to-run noise),
and 245-285 MiB less peak RSS at the 151,936 vocabulary.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any


@functools.cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return lib if lib is not None and hasattr(lib, "malloc_trim") else None  # glibc only


def release_freed_heap() -> bool:
    """Return free heap pages to the OS; False where the C library has no `malloc_trim`."""
    lib = _libc()
    if lib is None:
        return False
    lib.malloc_trim(0)
    return True
