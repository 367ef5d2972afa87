"""Node tests: the hand_driver process over Fast DDS on loopback, for the bus backends."""
from __future__ import annotations

import math
import os
import subprocess
import tempfile
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import QuaternionStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool

from dexndm_description import hand
from dexndm_driver.registers import reg
from dexndm_driver.sdk_io import SdkIO
from dexndm_msgs.msg import HandCommand
from driver_support import hand_driver_process, installed_executable

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class Client:
    """A DDS peer of the driver: records states and diagnostics, answers states with commands."""

    def __init__(self, name: str):
        self.node = Node(name)
        self.states, self.diags, self.wrists = [], [], []
        self.node.create_subscription(JointState, "/leap_hand/joint_states", self.states.append, RELIABLE)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diags.append, RELIABLE)
        self.node.create_subscription(QuaternionStamped, "/dexndm/wrist_orientation", self.wrists.append, RELIABLE)
        self.pub = self.node.create_publisher(HandCommand, "/leap_hand/command", RELIABLE)
        self.enable_client = self.node.create_client(SetBool, "/leap_hand/enable")
        self.answered = 0  # states received when the last answer went out

    def spin_until(self, predicate, timeout=15.0):
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.01)
        return predicate()

    def send(self, position, stamp=None):
        msg = HandCommand()
        msg.state_stamp = self.states[-1].header.stamp if stamp is None else stamp
        msg.position = [float(x) for x in position]
        self.pub.publish(msg)

    def answer(self, n, position=None):
        """Answer the next n states not yet answered, each with the newest state's stamp (targets:
        canonical pose plus a small wave unless given)."""
        for k in range(n):
            assert self.spin_until(lambda: len(self.states) > self.answered), "no joint state"
            self.answered = len(self.states)
            self.send(position if position is not None else hand.CANONICAL_POSE + 0.05 * math.sin(k / 4))

    def value(self, status_name, key):
        for array in reversed(self.diags):
            for status in array.status:
                if status.name == status_name:
                    return {kv.key: kv.value for kv in status.values}[key]
        return None

    def wait_value(self, status_name, key, predicate, timeout=10.0):
        return self.spin_until(lambda: (v := self.value(status_name, key)) is not None and predicate(v), timeout)

    def answer_until(self, key, predicate, position=None, tries=5):
        """Answer states until a commands counter satisfies predicate (an answer can lose the race
        with the next state on a loaded machine and be refused as stale)."""
        for _ in range(tries):
            self.answer(1, position)
            if self.wait_value("hand_driver: commands", key, predicate, timeout=3.0):
                return True
        return False

    def answer_until_reported(self, key, predicate, limit=5000):
        """Answer state after state (no lapse meanwhile) until the commands diagnostics satisfy predicate."""
        for _ in range(limit):
            self.answer(1)
            if (v := self.value("hand_driver: commands", key)) is not None and predicate(v):
                return True
        return False

    def enable(self, on: bool):
        assert self.enable_client.wait_for_service(timeout_sec=10.0)
        future = self.enable_client.call_async(SetBool.Request(data=on))
        assert self.spin_until(future.done)
        return future.result()

    def close(self):
        self.node.destroy_node()


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    yield
    rclpy.shutdown()


def exercise_bus_driver(client: Client):
    """What every bus-backed driver must do over DDS: publish, obey, refuse bad input, enable, watchdog."""
    assert client.spin_until(lambda: len(client.states) >= 5, timeout=20.0), "no joint states"
    first = client.states[-1]
    assert list(first.name) == list(hand.JOINT_NAMES) and len(first.position) == 16
    # The 20 Hz schedule itself is tested exactly on a stepped clock (test_wire); over DDS, that states
    # come and answers are taken.
    client.answer(20)
    stamps = [s.header.stamp.sec * 10**9 + s.header.stamp.nanosec for s in client.states]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), "one state per read, stamped at the read"
    assert client.wait_value("hand_driver: commands", "accepted", lambda v: int(v) >= 15)
    nan = hand.CANONICAL_POSE.copy()
    nan[3] = math.nan
    client.send(nan)
    assert client.wait_value("hand_driver: commands", "refused_non_finite", lambda v: v == "1")
    old = client.states[-3].header.stamp
    client.spin_until(lambda: False, timeout=0.1)
    client.send(hand.CANONICAL_POSE, stamp=old)
    assert client.wait_value("hand_driver: commands", "refused_stale", lambda v: int(v) >= 1)
    wide = hand.CANONICAL_POSE.copy()
    wide[1] = 4.0
    assert client.answer_until("clamped_joints", lambda v: v == "1", wide)
    assert client.wait_value("hand_driver: commands", "holding", lambda v: v == "True"), "watchdog never held"
    response = client.enable(False)
    assert response.success and "torque off" in response.message
    client.answer(1)
    assert client.wait_value("hand_driver: commands", "refused_inactive", lambda v: v == "1")
    response = client.enable(True)
    assert response.success
    before = int(client.value("hand_driver: commands", "accepted"))
    assert client.answer_until("accepted", lambda v: int(v) > before)
    assert client.wait_value("hand_driver: bus", "cycle_p50_ms", lambda v: 0.0 < float(v) < 50.0)
    assert client.spin_until(lambda: any(s.name.startswith("hand_driver: servo 15") for a in client.diags
                                         for s in a.status))


def test_emulated_backend_node(ros):
    client = Client("emulated_node_test")
    try:
        with hand_driver_process(backend="emulated", emulator_motor_model="first_order", wrist="thumb_up") as proc:
            exercise_bus_driver(client)
            assert client.spin_until(lambda: client.wrists)
            w = client.wrists[-1].quaternion
            assert np.allclose([w.x, w.y, w.z, w.w], [math.sqrt(0.5), 0, 0, math.sqrt(0.5)])
            proc.send_signal(2)
            assert proc.wait(timeout=15) == 0
    finally:
        client.close()


def test_dynamixel_backend_node_on_an_emulator_pty(ros):
    link = os.path.join(tempfile.mkdtemp(prefix="dexndm-node-"), "ttyDXL")
    emulator = subprocess.Popen([installed_executable("dexndm_bus_emulator"), "--link", link], stdout=subprocess.PIPE, text=True)
    client = Client("dynamixel_node_test")
    try:
        assert "emulated bus" in emulator.stdout.readline()
        with hand_driver_process(backend="dynamixel", port=link) as proc:
            exercise_bus_driver(client)
            proc.send_signal(2)
            out, _ = proc.communicate(timeout=15)
            assert proc.returncode == 0, out
        io = SdkIO(link)
        io.open()
        assert [io.read(i, reg("torque_enable")) for i in range(16)] == [0] * 16, "torque left on at shutdown"
        assert io.read(0, reg("operating_mode")) == 5 and io.read(0, reg("position_p_gain")) == 600
        io.close()
    finally:
        client.close()
        emulator.send_signal(2)
        emulator.wait(timeout=10)


def test_dynamixel_backend_reports_a_missing_port_clearly(ros):
    with hand_driver_process(backend="dynamixel", port="/tmp/dexndm-no-such-port"):
        client = Client("missing_port_test")
        try:
            # it starts unconfigured (reported at once), then autostart's configure fails and says why
            assert client.wait_value("hand_driver: bus", "last_error", lambda v: "cannot open /tmp/dexndm-no-such-port" in v)
            assert client.value("hand_driver: bus", "state") == "unconfigured"
            assert not client.states
        finally:
            client.close()


def test_sim_backend_node_in_lockstep_with_sim_time(ros):
    from geometry_msgs.msg import PoseStamped
    from rosgraph_msgs.msg import Clock

    client = Client("sim_node_test")
    clocks, poses = [], []
    client.node.create_subscription(Clock, "/clock", clocks.append, RELIABLE)
    client.node.create_subscription(PoseStamped, "/sim/object_pose", poses.append, RELIABLE)
    try:
        with hand_driver_process(backend="sim", realtime_factor=0.0, use_sim_time=True, command_timeout=2.0,
                                 wrist="palm_up", object="normal_cylinder") as proc:
            assert client.spin_until(lambda: client.states, timeout=20.0), "no joint states"
            client.answer(30)
            assert client.spin_until(lambda: len(client.states) >= 31)
            stamps = [s.header.stamp.sec * 10**9 + s.header.stamp.nanosec for s in client.states]
            steps = np.diff(stamps)
            assert np.all(steps == 50_000_000), "sim time advances 50 ms per answered state"
            client.answer(20)
            # keep answering until the diagnostics report it: at most the lapse before the first answer
            # (discovery); a held answered state would add one
            assert client.answer_until_reported("accepted", lambda v: int(v) >= 50)
            lapses = int(client.value("hand_driver: commands", "watchdog_timeouts"))
            assert lapses <= 1 and client.value("hand_driver: commands", "holding") == "False", \
                "an answered state was held for command_timeout"
            clock_ns = {c.clock.sec * 10**9 + c.clock.nanosec for c in clocks}
            assert set(stamps[1:]) <= clock_ns
            assert poses and poses[-1].header.frame_id == "world"
            w = client.wrists[-1].quaternion
            assert np.allclose([w.x, w.y, w.z, w.w], [1.0, 0.0, 0.0, 0.0])
            # without answers the sim holds the last target after command_timeout, then steps on
            # (the exact wait is tested on a stepped clock in test_lockstep)
            n = len(client.states)
            assert client.wait_value("hand_driver: commands", "holding", lambda v: v == "True")
            assert int(client.value("hand_driver: commands", "watchdog_timeouts")) == lapses + 1
            assert client.spin_until(lambda: len(client.states) > n + 1), "the held sim steps on"
            proc.send_signal(2)
            assert proc.wait(timeout=15) == 0
    finally:
        client.close()


def test_emulated_backend_node_with_physics_publishes_the_object(ros):
    from geometry_msgs.msg import PoseStamped

    client = Client("emulated_physics_node_test")
    poses = []
    client.node.create_subscription(PoseStamped, "/sim/object_pose", poses.append, RELIABLE)
    try:
        with hand_driver_process(backend="emulated", object="normal_cylinder"):
            assert client.spin_until(lambda: len(client.states) >= 3, timeout=25.0), "no joint states"
            client.answer(20)
            assert client.spin_until(lambda: len(poses) >= 10)
            assert client.wait_value("hand_driver: commands", "accepted", lambda v: int(v) >= 15)
            z = poses[-1].pose.position.z
            assert np.isfinite(z) and poses[-1].header.frame_id == "world"
    finally:
        client.close()


def test_bad_parameters_stop_the_node_with_a_clear_error():
    for params, expected in (({"backend": "simulated"}, "unknown backend 'simulated': use one of sim"),
                             ({"backend": "sim", "wrist": "sideways"}, "unknown wrist orientation 'sideways'"),
                             ({"backend": "sim", "initial_pose": "fist"}, "unknown initial_pose 'fist'")):
        with hand_driver_process(**params) as proc:
            out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 2 and expected in out, out


def test_dynamixel_node_survives_the_adapter_being_unplugged(ros):
    link = os.path.join(tempfile.mkdtemp(prefix="dexndm-node-"), "ttyDXL")

    def start_emulator():
        proc = subprocess.Popen([installed_executable("dexndm_bus_emulator"), "--link", link],
                                stdout=subprocess.PIPE, text=True)
        assert "emulated bus" in proc.stdout.readline()
        return proc

    emulator = start_emulator()
    client = Client("unplug_node_test")
    try:
        with hand_driver_process(backend="dynamixel", port=link):
            assert client.spin_until(lambda: len(client.states) >= 5, timeout=20.0)
            emulator.send_signal(2)  # the U2D2 is unplugged: the pty and its path vanish
            emulator.wait(timeout=10)
            unplugged_ns = time.time_ns()  # the pty is gone: no read can succeed from here on
            assert client.wait_value("hand_driver: bus", "connected", lambda v: v == "False")
            assert client.value("hand_driver: bus", "port_lost") == "1"
            n = len(client.diags)
            lost = len(client.states)
            assert client.spin_until(lambda: len(client.diags) >= n + 2, timeout=5.0), "diagnostics must go on"
            replugged_ns = time.time_ns()
            emulator = start_emulator()  # plugged back in: fresh servos behind the same path
            assert client.wait_value("hand_driver: bus", "reconnects", lambda v: v == "1")
            assert client.spin_until(lambda: len(client.states) >= lost + 10, timeout=5.0), "states resume"
            assert client.answer_until("accepted", lambda v: int(v) >= 1)
    finally:
        client.close()
        emulator.send_signal(2)
        emulator.wait(timeout=10)
    assert not os.path.exists(link), "the emulator removes its link on exit"
    # stamped at the read (the same machine clock): states still in flight at the unplug are older
    stamps = [s.header.stamp.sec * 10**9 + s.header.stamp.nanosec for s in client.states]
    assert not [t for t in stamps if unplugged_ns <= t <= replugged_ns], "no state may be published without a bus"


def set_parameter(node, target: str, name: str, value):
    """`ros2 param set /target name value` over the node's parameter service; returns the result."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = node.create_client(SetParameters, f"/{target}/set_parameters")
    assert client.wait_for_service(timeout_sec=30.0), f"/{target}/set_parameters never appeared"
    future = client.call_async(SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()]))
    rclpy.spin_until_future_complete(node, future, timeout_sec=30.0)
    node.destroy_client(client)
    return future.result().results[0]


def describe_parameter(node, target: str, name: str):
    from rcl_interfaces.srv import DescribeParameters

    client = node.create_client(DescribeParameters, f"/{target}/describe_parameters")
    assert client.wait_for_service(timeout_sec=30.0)
    future = client.call_async(DescribeParameters.Request(names=[name]))
    rclpy.spin_until_future_complete(node, future, timeout_sec=30.0)
    node.destroy_client(client)
    return future.result().descriptors[0]


def test_construction_time_parameters_are_read_only_and_described(ros):
    """`param set command_timeout` used to succeed and change nothing: now it is refused as read-only."""
    client = Client("param_client")
    try:
        with hand_driver_process(backend="sim", object="none", realtime_factor=0.0, use_sim_time=True):
            result = set_parameter(client.node, "hand_driver", "command_timeout", 2.0)
            assert not result.successful and "read-only" in result.reason
            descriptor = describe_parameter(client.node, "hand_driver", "command_timeout")
            assert descriptor.read_only and "lockstep wait" in descriptor.description
    finally:
        client.close()


def test_a_gated_sim_publishes_nothing_before_every_gate_opens(ros):
    """Start-up race: late subscribers (the rotate app's monitor and viewer) must see the run from its first
    state. With two gates, one open is not enough; the driver reports which one it still waits for."""
    from std_msgs.msg import Empty

    from dexndm_description import interfaces

    probe = Node("gate_probe")
    diags, states = [], []
    probe.create_subscription(DiagnosticArray, "/diagnostics", diags.append, RELIABLE)
    gates = {name: probe.create_publisher(Empty, f"/gate_test/{name}", interfaces.LATCHED.profile())
             for name in ("monitor", "viewer")}

    def spin_until(predicate, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            rclpy.spin_once(probe, timeout_sec=0.02)
        return predicate()

    def pending():
        bus = [s for d in diags for s in d.status if s.name == "hand_driver: bus"]
        return {kv.key: kv.value for kv in bus[-1].values}["start_gates_pending"] if bus else None

    try:
        with hand_driver_process(backend="sim", object="none", realtime_factor=0.0, use_sim_time=True,
                                 command_timeout=0.2, start_gate="/gate_test/monitor, /gate_test/viewer"):
            assert spin_until(lambda: pending() == "/gate_test/monitor,/gate_test/viewer"), pending()
            sub = probe.create_subscription(JointState, "/leap_hand/joint_states", states.append, RELIABLE)
            assert spin_until(lambda: sub.get_publisher_count() > 0)
            gates["monitor"].publish(Empty())
            assert spin_until(lambda: pending() == "/gate_test/viewer"), pending()  # the driver has the first
            assert not states  # nothing published while one gate is shut (ungated: a state every command_timeout)
            gates["viewer"].publish(Empty())
            assert spin_until(lambda: len(states) >= 3)
    finally:
        probe.destroy_node()
    stamps = [s.header.stamp.sec * 10**9 + s.header.stamp.nanosec for s in states[:3]]
    assert stamps == [0, 50_000_000, 100_000_000], "the late subscribers must see the first state of the run"
