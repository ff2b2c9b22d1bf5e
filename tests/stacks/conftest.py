"""What every stack test may ask for: ``bu``, each example BU in turn."""

import pytest
from harness.synthesized_app import EXAMPLE_BUS


@pytest.fixture(params=EXAMPLE_BUS)
def bu(request: pytest.FixtureRequest) -> str:
    """Each example BU in turn: a test that asks for it, or for a fixture built on it, runs per
    BU."""
    return request.param
