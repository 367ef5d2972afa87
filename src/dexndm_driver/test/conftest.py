"""Fixtures for the driver tests: an emulated bus with first-order motors, an SDK port on it, a sink.

This folder goes on sys.path so the tests import their support module (driver_support.py) by name.
"""
from __future__ import annotations

import os
import sys

import pytest

from dexndm_driver.emulator import EmulatedBus, FirstOrderMotors
from dexndm_driver.sdk_io import SdkIO

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from driver_support import RecordingSink  # noqa: E402


@pytest.fixture
def sink():
    return RecordingSink()


@pytest.fixture
def bus():
    with EmulatedBus(FirstOrderMotors()) as emulated:
        yield emulated


@pytest.fixture
def io(bus):
    # These tests are about packets and registers, not reply timing: a wider reply allowance than the
    # SDK's (16 ms latency, 34 ms timeout) keeps a loaded machine's scheduling out of them. The driver
    # fixtures keep the SDK's timing (the fault tests rely on replies missing it). 60 ms was missed once
    # (a ping to servo 4, the full suite beside two training runs); a reply is never late by 200 ms.
    sdk_io = SdkIO(bus.port, latency_ms=200.0)
    sdk_io.open()
    yield sdk_io
    sdk_io.close()
