"""Fixtures for the driver tests: an emulated bus with first-order motors, an SDK port on it, a sink."""
from __future__ import annotations

import pytest

from dexndm_driver.emulator import EmulatedBus, FirstOrderMotors
from dexndm_driver.sdk_io import SdkIO
from dexndm_driver.testing import RecordingSink


@pytest.fixture
def sink():
    return RecordingSink()


@pytest.fixture
def bus():
    with EmulatedBus(FirstOrderMotors()) as emulated:
        yield emulated


@pytest.fixture
def io(bus):
    sdk_io = SdkIO(bus.port)
    sdk_io.open()
    yield sdk_io
    sdk_io.close()
