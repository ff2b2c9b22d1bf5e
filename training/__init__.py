"""The training core. Importing it first (as every ``python -m training.*`` command does) sets
OpenMP's wait policy before torch loads its OpenMP runtime.

``OMP_WAIT_POLICY=PASSIVE``: an OpenMP thread that reaches a barrier early sleeps instead of
spinning on its core. On a machine another process keeps busy, spinning threads take the cores
the lagging thread needs, and each of a step's thousands of parallel regions waits for it (the
tiny CPU run went from 15.4k to 4.1k tokens/s beside one busy process; passive: 13.2k idle and
9.9k busy; ``make bench-contention``, training/README.md). Set ``OMP_WAIT_POLICY`` (or
``GOMP_SPINCOUNT``) yourself to choose otherwise, e.g. ``ACTIVE`` on a machine nothing else uses.
"""

import os

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
