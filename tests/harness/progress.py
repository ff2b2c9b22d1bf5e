"""A pytest plugin: every minute a test (its set-up included) runs, say which one, so a long
fixture such as the e2e training run never leaves `make test` silent.
``PYTEST_STILL_RUNNING_S`` changes the interval (its own test uses 1 s)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    every = float(os.environ.get("PYTEST_STILL_RUNNING_S", "60"))
    done = threading.Event()
    start = time.monotonic()
    capture = item.config.pluginmanager.get_plugin("capturemanager")
    terminal = item.config.pluginmanager.get_plugin("terminalreporter")

    def report() -> None:
        while not done.wait(every):
            if capture is None or terminal is None:
                return
            with capture.global_and_fixture_disabled():
                terminal.write_line(
                    f"  ... still running {item.nodeid} ({time.monotonic() - start:.0f} s)"
                )

    thread = threading.Thread(target=report, name="still-running", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
