"""gap_monitor as a real process over Fast DDS: the test plays driver and policy with a known first-order law."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from ament_index_python.packages import get_package_prefix
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from dexndm_description import hand
from dexndm_msgs.msg import DynamicsGap, PolicyStep

sys.path.insert(0, str(Path(__file__).parent))
import dynamics_fixture as fx  # noqa: E402

EXECUTABLE = Path(get_package_prefix("dexndm_policy")) / "lib" / "dexndm_policy" / "gap_monitor"
WARN = b"\x01"
# Deep enough that a burst of ticks is never overwritten before the monitor has taken it (KEEP_LAST).
RELIABLE = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)


class HandAndPolicy(Node):
    """Publishes joint states and the PolicySteps answering them; records gap ticks and diagnostics."""

    def __init__(self):
        super().__init__("gap_test_rig")
        self.q = hand.CANONICAL_POSE.copy()
        self.tick = 0
        self.gaps: list[DynamicsGap] = []
        self.statuses = []
        self.state_pub = self.create_publisher(JointState, "/leap_hand/joint_states", RELIABLE)
        self.step_pub = self.create_publisher(PolicyStep, "/dexndm/policy/step", RELIABLE)
        self.gap_sub = self.create_subscription(DynamicsGap, "/dexndm/gap/error", self.gaps.append, RELIABLE)
        self.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.statuses.extend(
            s for s in m.status if s.name == "dexndm/gap_monitor"), 10)

    def spin_until(self, predicate, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            rclpy.spin_once(self, timeout_sec=0.01)
        return predicate()

    def matched(self) -> bool:
        return (self.state_pub.get_subscription_count() > 0 and self.step_pub.get_subscription_count() > 0
                and self.gap_sub.get_publisher_count() > 0)

    def run(self, targets: np.ndarray, alpha: float, q_override: dict | None = None) -> int:
        """One state + executed target per row of targets, then q += alpha (a - q). q_override {joint: rad}
        replaces joints in the published states only (a sensor excursion). Returns the first tick sent."""
        first = self.tick + 1
        for a in targets:
            self.tick += 1
            q = self.q.copy()
            for joint, value in (q_override or {}).items():
                q[joint] = value
            state = JointState(name=list(hand.JOINT_NAMES), position=q.tolist())
            state.header.stamp.sec, state.header.stamp.nanosec = divmod(self.tick * 50_000_000, 1_000_000_000)
            self.state_pub.publish(state)
            step = PolicyStep(state_stamp=state.header.stamp, base_target=a.tolist(), residual=[0.0] * 16,
                              executed_target=a.tolist(), axis=[0.0, 0.0, 1.0])
            self.step_pub.publish(step)
            self.q = self.q + alpha * (a - self.q)
            rclpy.spin_once(self, timeout_sec=0.0)
        return first


def walk(steps: int, seed: int) -> np.ndarray:
    """Targets of the fitted kind: a random walk within the canonical pose +- 0.3 rad."""
    _, a = fx.first_order_rollouts(0.5, episodes=1, steps=steps, seed=seed)
    return a[0]


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gap")
    q, _ = fx.first_order_rollouts(0.5)
    model = fx.halfway_model_path(tmp_path_factory, folder)
    log = open(folder / "gap_monitor.err", "w")
    proc = subprocess.Popen([str(EXECUTABLE), "--ros-args", "-p", f"model:={model}", "-p", "diagnostics_period:=0.2"],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    rclpy.init()
    node = HandAndPolicy()
    assert node.spin_until(node.matched, timeout=60.0), "gap_monitor never matched the test's topics"
    node.q = q[0, 0].copy()
    yield node, proc
    node.destroy_node()
    rclpy.shutdown()
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)
    log.close()


def test_every_tick_publishes_each_joints_error_small_on_the_law_large_off_it(rig):
    node, _ = rig
    w = fx.WINDOW
    node.run(walk(40, seed=11), alpha=0.5)
    assert node.spin_until(lambda: len(node.gaps) >= 40 - w), f"only {len(node.gaps)} gap ticks"  # the 40th awaits q_41
    on_law = list(node.gaps)
    for msg in on_law:
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        source = msg.state_stamp.sec * 10**9 + msg.state_stamp.nanosec
        assert stamp - source == 50_000_000  # q_{t+1} against the prediction from q_t's window
        np.testing.assert_allclose(msg.error, np.asarray(msg.measured) - np.asarray(msg.predicted), atol=1e-12)
        assert not any(msg.out_of_range)
    assert np.mean([m.mean_abs_error for m in on_law]) < 0.002
    node.gaps.clear()
    node.run(walk(30, seed=12), alpha=0.2)  # the hand no longer follows the fitted law
    assert node.spin_until(lambda: len(node.gaps) >= 30)
    off_law = np.mean([m.mean_abs_error for m in node.gaps[w:]])  # windows holding only the new law
    assert off_law > 0.005 and off_law > 5 * np.mean([m.mean_abs_error for m in on_law])


def test_leaving_the_fitted_range_raises_a_diagnostics_warning_naming_the_joint(rig):
    node, _ = rig
    node.run(walk(12, seed=13), alpha=0.5)
    node.statuses.clear()
    beyond = float(hand.clip_to_limits(hand.CANONICAL_POSE + 0.8)[3])  # if_dip, far past the +-0.3 rad it saw
    first = node.run(walk(3, seed=14), alpha=0.5, q_override={3: beyond})

    def from_excursion():
        return [m for m in node.gaps if m.state_stamp.sec * 10**9 + m.state_stamp.nanosec >= first * 50_000_000]

    def warned():
        return any(s.level == WARN and "if_dip" in s.message for s in node.statuses)

    assert node.spin_until(warned, timeout=20.0), [s.message for s in node.statuses]
    assert node.spin_until(lambda: len(from_excursion()) >= 2)  # the third awaits the next state
    assert all(m.out_of_range[3] and sum(m.out_of_range) == 1 for m in from_excursion())
    warning = next(s for s in node.statuses if s.level == WARN and "if_dip" in s.message)
    assert {kv.key: kv.value for kv in warning.values}["out_of_range_joints"] == "if_dip"
    node.run(walk(fx.WINDOW + 2, seed=15), alpha=0.5)  # back inside; the window forgets the excursion
    node.statuses.clear()
    assert node.spin_until(lambda: any(s.level == b"\x00" and "one-step error" in s.message for s in node.statuses),
                           timeout=20.0)


def test_shutdown_prints_the_summary_line(rig):
    node, proc = rig
    assert node.spin_until(lambda: len(node.statuses) > 0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    fields = dict(pair.split("=") for pair in out.strip().splitlines()[-1].split())
    assert int(fields["gap_ticks"]) >= 40 and int(fields["out_of_range_pairs"]) == 3
    assert float(fields["gap_mean_rad"]) > 0 and fields["gap_worst_joint"] in hand.JOINT_NAMES
    assert 0 < float(fields["cpu_ms_per_tick"]) < 50


def test_a_missing_model_stops_the_node_saying_how_to_make_one(tmp_path):
    out = subprocess.run([str(EXECUTABLE), "--ros-args", "-p", f"model:={tmp_path / 'dynamics.onnx'}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "no dynamics model at" in out.stderr and "dynamics.onnx contract" in out.stderr, out.stderr
