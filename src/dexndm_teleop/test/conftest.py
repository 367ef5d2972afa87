"""Fixtures of the teleop tests: a ROS probe node in this process, the teleop node as a process."""
from __future__ import annotations

import pytest
import rclpy

from dexndm_teleop.harness import TeleopProcess
from dexndm_teleop.ros_probe import Probe


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
