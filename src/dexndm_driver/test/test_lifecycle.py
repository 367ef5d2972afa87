"""The driver's lifecycle (configure opens the port, activate = torque on, deactivate = torque off,
cleanup closes the port, shutdown from any state), in the core and over DDS through the node's
lifecycle services, with torque read from the emulated servos' control tables."""
from __future__ import annotations

import os
import tempfile
import time

import pytest
import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from dexndm_description import hand
from dexndm_driver.backends import BusBackend
from dexndm_driver.driver import DriverConfig, HandDriver
from dexndm_driver.emulator import EmulatedBus, FirstOrderMotors
from dexndm_driver.states import DriverState
from driver_support import BUS_SLACK_MS, hand_driver_process

OFF, ON = [0] * 16, [1] * 16
#: These tests are about transitions, not reply timing: the in-process emulator gets a wider reply window
#: than the SDK's 34 ms, which a loaded machine's scheduling can miss.
SLACK_MS = BUS_SLACK_MS


# ---- the core, in this process ------------------------------------------------------------------
def test_transitions_open_the_port_switch_torque_and_close_it(bus, sink):
    backend = BusBackend(bus.port, latency_ms=SLACK_MS)
    driver = HandDriver(backend, sink, DriverConfig(diagnostics_period=0.1))
    driver.start()
    try:
        assert driver.state is DriverState.UNCONFIGURED
        assert sink.wait_until(lambda: sink.diags), "an unconfigured driver still reports"
        assert not bus.log and not backend.hand.io.is_open, "nothing is opened before configure"
        ok, message = driver.activate()
        assert not ok and "cannot activate the driver while it is unconfigured" in message
        assert driver.configure() == (True, f"dynamixel backend configured on {bus.port} (torque off)")
        assert driver.state is DriverState.INACTIVE and backend.hand.io.is_open and bus.torque() == OFF
        assert sink.wait_until(lambda: sink.states), "an inactive driver reads and publishes states"
        assert driver.activate()[0] and driver.state is DriverState.ACTIVE and bus.torque() == ON
        assert sink.wait_until(lambda: driver.submit(hand.CANONICAL_POSE, sink.states[-1][0]).accepted)
        assert driver.deactivate() == (True, "torque off") and bus.torque() == OFF
        assert driver.submit(hand.CANONICAL_POSE, sink.states[-1][0]).reason == "inactive"
        assert driver.cleanup()[0] and driver.state is DriverState.UNCONFIGURED
        assert not backend.hand.io.is_open
        assert not driver.cleanup()[0], "cleanup only from inactive"
        assert driver.configure()[0] and driver.activate()[0] and bus.torque() == ON, "configure again after cleanup"
    finally:
        driver.stop()
    assert driver.state is DriverState.FINALIZED and bus.torque() == OFF and not backend.hand.io.is_open
    assert driver.configure() == (False, "cannot configure: the driver loop is not running (finalized)")


@pytest.mark.parametrize("start", [DriverState.UNCONFIGURED, DriverState.INACTIVE, DriverState.ACTIVE])
def test_shutdown_from_any_state_leaves_torque_off_and_the_port_closed(bus, sink, start):
    backend = BusBackend(bus.port, latency_ms=SLACK_MS)
    driver = HandDriver(backend, sink, DriverConfig())
    driver.start()
    if start is not DriverState.UNCONFIGURED:
        assert driver.configure()[0]
    if start is DriverState.ACTIVE:
        assert driver.activate()[0] and bus.torque() == ON
    assert driver.state is start
    assert driver.shutdown() == (True, "finalized: torque off, port closed")
    assert driver.state is DriverState.FINALIZED and bus.torque() == OFF and not backend.hand.io.is_open


# ---- the node over DDS ----------------------------------------------------------------------------
class LifecycleClient:
    """`ros2 lifecycle get/set /hand_driver` over the node's lifecycle services."""

    def __init__(self, node: Node, target: str = "hand_driver"):
        self.node = node
        self.change = node.create_client(ChangeState, f"/{target}/change_state")
        self.get = node.create_client(GetState, f"/{target}/get_state")

    def _call(self, client, request):
        assert client.wait_for_service(timeout_sec=30.0), f"{client.srv_name} never appeared"
        future = client.call_async(request)
        rclpy.spin_until_future_complete(self.node, future, timeout_sec=30.0)
        assert future.done(), f"{client.srv_name} did not answer"
        return future.result()

    def state(self) -> str:
        return self._call(self.get, GetState.Request()).current_state.label

    def set(self, transition_id: int) -> bool:
        return self._call(self.change, ChangeState.Request(transition=Transition(id=transition_id))).success


def holds_open(pid: int, link: str) -> bool:
    """Whether process pid has the pty behind link open (its /proc fd table)."""
    device = os.path.realpath(link)
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, fd)) == device:
                return True
        except OSError:
            pass
    return False


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def test_lifecycle_services_drive_the_port_and_the_torque(ros):
    """configure, activate, deactivate, cleanup (and again, then shutdown) over DDS; torque as the
    servos' control tables hold it, the port as the driver process's fd table shows it."""
    link = os.path.join(tempfile.mkdtemp(prefix="dexndm-lifecycle-"), "ttyDXL")
    node = Node("lifecycle_test")
    states = []
    node.create_subscription(JointState, "/leap_hand/joint_states", states.append,
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    lifecycle = LifecycleClient(node)

    def spin_until(predicate, timeout=15.0):
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        return predicate()

    try:
        with EmulatedBus(FirstOrderMotors(), link=link) as bus, \
                hand_driver_process(backend="dynamixel", port=link, autostart=False, latency_ms=SLACK_MS) as proc:
            assert lifecycle.state() == "unconfigured"
            assert not bus.log and not holds_open(proc.pid, link), "the port stays closed until configure"
            assert not lifecycle.set(Transition.TRANSITION_ACTIVATE), "activate needs configure first"
            assert lifecycle.state() == "unconfigured", "a refused transition leaves the node up and unchanged"

            assert lifecycle.set(Transition.TRANSITION_CONFIGURE) and lifecycle.state() == "inactive"
            assert holds_open(proc.pid, link) and bus.torque() == OFF
            assert {e.ids[0] for e in bus.log if e.instruction == "ping"} == set(range(16))
            assert all(s.get("operating_mode") == 5 for s in bus.servos.values()), "setup ran at configure"
            assert spin_until(lambda: states), "an inactive driver publishes joint states"

            assert lifecycle.set(Transition.TRANSITION_ACTIVATE) and lifecycle.state() == "active"
            assert bus.torque() == ON
            assert lifecycle.set(Transition.TRANSITION_DEACTIVATE) and lifecycle.state() == "inactive"
            assert bus.torque() == OFF
            assert lifecycle.set(Transition.TRANSITION_CLEANUP) and lifecycle.state() == "unconfigured"
            assert not holds_open(proc.pid, link), "cleanup closes the port"

            assert lifecycle.set(Transition.TRANSITION_CONFIGURE) and lifecycle.set(Transition.TRANSITION_ACTIVATE)
            assert holds_open(proc.pid, link) and bus.torque() == ON
            assert lifecycle.set(Transition.TRANSITION_ACTIVE_SHUTDOWN) and lifecycle.state() == "finalized"
            assert bus.torque() == OFF and not holds_open(proc.pid, link)
            proc.send_signal(2)
            assert proc.wait(timeout=15) == 0
    finally:
        node.destroy_node()

