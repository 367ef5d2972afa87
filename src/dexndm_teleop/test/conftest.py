"""Fixtures of the teleop tests: a ROS probe node in this process, the teleop node as a process."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import rclpy

sys.path.insert(0, str(Path(__file__).parent))  # teleop_testing: the tooling beside these tests
from teleop_testing.harness import TeleopProcess  # noqa: E402
from teleop_testing.ros_probe import Probe  # noqa: E402


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture
def probe_factory(ros):
    made = []

    def make(*args, **kwargs):
        made.append(Probe(*args, **kwargs))
        return made[-1]

    yield make
    for probe in made:
        probe.close()


@pytest.fixture
def teleop_factory():
    made = []

    def make(parameters=None, remaps=None):
        params = {"port": 0, "https": False, "arm_source": "pose"}
        params.update(parameters or {})
        made.append(TeleopProcess(params, remaps))
        return made[-1]

    yield make
    for proc in made:
        proc.stop()
