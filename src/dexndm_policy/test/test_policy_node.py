"""rotation_policy as a real process over Fast DDS, driven by a lockstep joint-state fixture."""
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import rclpy
from ament_index_python.packages import get_package_prefix
from geometry_msgs.msg import Vector3, Vector3Stamped
from std_srvs.srv import SetBool

from dexndm_description import hand
from dexndm_msgs.srv import SetRotationAxis
from dexndm_policy import contract, runtime

sys.path.insert(0, str(Path(__file__).parent))
from lockstep_hand import LockstepHand  # noqa: E402


def policy_command(*params: str) -> list[str]:
    executable = Path(get_package_prefix("dexndm_policy")) / "lib" / "dexndm_policy" / "rotation_policy"
    cmd = [str(executable), "--ros-args", "-p", "diagnostics_period:=0.2"]
    for p in params:
        cmd += ["-p", p]
    return cmd


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    log = open(tmp_path_factory.mktemp("policy") / "rotation_policy.log", "w")  # a file: a full pipe would block the node
    proc = subprocess.Popen(policy_command("axis:=z", "state_timeout:=0.5"), stdout=log, stderr=subprocess.STDOUT)
    rclpy.init()
    fixture = LockstepHand()
    assert fixture.wait_for_policy(), "rotation_policy never appeared on DDS"
    yield fixture, proc
    fixture.destroy_node()
    rclpy.shutdown()
    proc.send_signal(2)
    proc.wait(timeout=10)
    log.close()


def call(node, client, request):
    assert client.wait_for_service(timeout_sec=20.0)
    future = client.call_async(request)
    assert node.spin_until(future.done)
    return future.result()


def test_one_command_per_state_answering_its_stamp(rig):
    hand_fixture, _ = rig
    hand_fixture.steps.clear()
    answered = [hand_fixture.step() for _ in range(30)]
    assert all(c is not None for c in answered), "a state went unanswered"
    assert len({(c.state_stamp.sec, c.state_stamp.nanosec) for c in answered}) == 30
    assert hand_fixture.spin_until(lambda: len(hand_fixture.steps) >= 30)
    step = hand_fixture.steps[-1]
    base, residual, executed = (np.asarray(v) for v in (step.base_target, step.residual, step.executed_target))
    np.testing.assert_allclose(executed, hand.clip_to_limits(base + residual))
    np.testing.assert_allclose(executed, answered[-1].position)
    assert hand.within_limits(executed) and step.inference_ms > 0 and list(step.axis) == [0.0, 0.0, 1.0]
    # The base target moves by at most 1/24 rad per joint per step (delta in [-1, 1]).
    bases = np.array([s.base_target for s in hand_fixture.steps[-10:]])
    assert np.all(np.abs(np.diff(bases, axis=0)) <= hand.ACTION_SCALE + 1e-9)


def test_set_axis_service_applies_names_and_refuses_unknown_ones(rig):
    hand_fixture, _ = rig
    client = hand_fixture.create_client(SetRotationAxis, "/dexndm/policy/set_axis")
    result = call(hand_fixture, client, SetRotationAxis.Request(name="-y"))
    assert result.success and result.axis.y == pytest.approx(-1.0)
    for bad in ("sideways", "general:26", "1,2"):
        result = call(hand_fixture, client, SetRotationAxis.Request(name=bad))
        assert not result.success and "unknown rotation axis" in result.message
        assert result.axis.y == pytest.approx(-1.0)  # unchanged
    result = call(hand_fixture, client, SetRotationAxis.Request(axis=Vector3(x=0.0, y=0.0, z=0.0)))
    assert not result.success and "zero length" in result.message
    hand_fixture.step()
    assert hand_fixture.spin_until(lambda: list(hand_fixture.steps[-1].axis) == [0.0, -1.0, 0.0])


def test_axis_topic_refuses_zero_nan_and_foreign_frames(rig):
    hand_fixture, _ = rig
    pub = hand_fixture.create_publisher(Vector3Stamped, "/dexndm/rotation_axis", 10)
    assert hand_fixture.spin_until(lambda: pub.get_subscription_count() > 0)

    def send(x, y, z, frame="palm"):
        msg = Vector3Stamped(vector=Vector3(x=x, y=y, z=z))
        msg.header.frame_id = frame
        pub.publish(msg)
        hand_fixture.spin_until(lambda: False, timeout=0.3)
        hand_fixture.step()
        hand_fixture.spin_until(lambda: False, timeout=0.2)
        return np.asarray(hand_fixture.steps[-1].axis)

    # The publisher can see the node's subscription before the node has matched the publisher, and a message
    # sent in between is lost (volatile QoS). Warm up with an axis none of the checks expect until it arrives.
    deadline = time.monotonic() + 10.0
    while not np.allclose(send(0.0, 1.0, 0.0), [0, 1, 0]) and time.monotonic() < deadline:
        pass
    np.testing.assert_allclose(send(2.0, 0.0, 0.0), [1, 0, 0])
    np.testing.assert_allclose(send(0.0, 0.0, 0.0), [1, 0, 0])
    np.testing.assert_allclose(send(math.nan, 0.0, 1.0), [1, 0, 0])
    np.testing.assert_allclose(send(0.0, 0.0, 1.0, frame="world"), [1, 0, 0])
    np.testing.assert_allclose(send(0.0, 3.0, 4.0), [0, 0.6, 0.8])


def test_nan_or_short_state_stops_commanding_with_a_reason_then_resumes(rig):
    hand_fixture, _ = rig
    assert hand_fixture.step() is not None
    nan = hand.CANONICAL_POSE.copy()
    nan[3] = math.nan
    assert hand_fixture.answer(hand_fixture.publish_state(nan), timeout=1.0) is None
    hand_fixture.diagnostics.clear()

    def stopped():
        return any(s.level == b"\x02" and "NaN" in s.message for d in hand_fixture.diagnostics for s in d.status)

    assert hand_fixture.spin_until(stopped, timeout=5.0), "no ERROR diagnostic naming the NaN"
    assert hand_fixture.answer(hand_fixture.publish_state(np.zeros(12), names=False), timeout=1.0) is None
    assert hand_fixture.step() is not None  # a good state resumes (with a fresh history)
    status = hand_fixture.diagnostics[-1].status[0]
    assert any(kv.key == "inference_ms_p50" and float(kv.value) > 0 for kv in status.values)


def test_disable_holds_the_last_target_and_enable_resumes(rig):
    hand_fixture, _ = rig
    last = hand_fixture.step()
    client = hand_fixture.create_client(SetBool, "/dexndm/policy/enable")
    assert call(hand_fixture, client, SetBool.Request(data=False)).success
    steps_before = len(hand_fixture.steps)
    held = [hand_fixture.step() for _ in range(3)]
    assert all(np.allclose(c.position, last.position) for c in held)
    hand_fixture.spin_until(lambda: False, timeout=0.3)
    assert len(hand_fixture.steps) == steps_before  # no policy steps while disabled
    assert call(hand_fixture, client, SetBool.Request(data=True)).success
    assert hand_fixture.step() is not None
    assert hand_fixture.spin_until(lambda: len(hand_fixture.steps) > steps_before)


def run_until_exit(*params: str) -> subprocess.CompletedProcess:
    return subprocess.run(policy_command(*params), capture_output=True, text=True, timeout=60)


def test_startup_refuses_unknown_axis_missing_and_wrong_layout_models(tmp_path):
    out = run_until_exit("axis:=sideways")
    assert out.returncode == 1 and "unknown rotation axis 'sideways'" in out.stderr
    out = run_until_exit(f"generalist_model:={tmp_path / 'missing.onnx'}")
    assert out.returncode == 1 and "missing.onnx does not exist" in out.stderr
    model = onnx.load(str(runtime.default_model_path("generalist")))
    for entry in model.metadata_props:
        if entry.key == contract.META_JOINTS:
            entry.value = ",".join(reversed(hand.JOINT_NAMES))
    onnx.save(model, str(tmp_path / "shuffled.onnx"))
    out = run_until_exit(f"generalist_model:={tmp_path / 'shuffled.onnx'}")
    assert out.returncode == 1 and "joint names differ" in out.stderr and "re-export" in out.stderr


def test_parameters_it_would_ignore_are_refused_and_live_ones_apply(rig):
    """The node used to accept `param set wrist ...` (and every other parameter) and change nothing."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    hand_fixture, _ = rig
    client = hand_fixture.create_client(SetParameters, "/rotation_policy/set_parameters")

    def set_param(name, value):
        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        return call(hand_fixture, client, request).results[0]

    for name, value in (("wrist", "palm_down"), ("max_state_age", 0.5), ("generalist_model", "/tmp/x.onnx"),
                        ("disabled_command", "open"), ("state_timeout", 3.0), ("diagnostics_period", 5.0)):
        result = set_param(name, value)
        assert not result.successful and "read-only" in result.reason, (name, result.reason)
    assert not set_param("axis", "sideways").successful
    assert set_param("axis", "-x").successful
    hand_fixture.step()
    assert hand_fixture.spin_until(lambda: list(hand_fixture.steps[-1].axis) == [-1.0, 0.0, 0.0])
    assert set_param("axis", "z").successful
    hand_fixture.destroy_client(client)
