"""Plain-module tests: frames, button edges, the clutch, the axis selector and the teleop core."""
from __future__ import annotations

import numpy as np
import pytest

from dexndm_teleop import schema
from dexndm_teleop.axis import AxisConfig, AxisSelector, orientation_axis, parse_table
from dexndm_teleop.clutch import ArmClutch, ClutchConfig
from dexndm_teleop.controls import Button
from dexndm_teleop.core import TeleopConfig, TeleopCore
from dexndm_teleop.frames import (XR_TO_ROBOT, Pose, matrix_from_rotvec, matrix_to_quat, quat_to_matrix,
                                  rotvec_from_matrix, xr_to_robot)
from dexndm_teleop.params import PARAMETERS, build_configs, franka_fault

IDENTITY = np.array([0.0, 0.0, 0.0, 1.0])


def rot(axis, angle):
    return matrix_from_rotvec(np.asarray(axis, float) * angle)


def test_xr_to_robot_frame():
    assert np.isclose(np.linalg.det(XR_TO_ROBOT), 1.0) and np.allclose(XR_TO_ROBOT @ XR_TO_ROBOT.T, np.eye(3))
    # XR forward (-z) is robot +x, XR right (+x) is robot -y, XR up (+y) is robot +z.
    assert np.allclose(XR_TO_ROBOT @ [0, 0, -1], [1, 0, 0])
    assert np.allclose(XR_TO_ROBOT @ [1, 0, 0], [0, -1, 0])
    assert np.allclose(XR_TO_ROBOT @ [0, 1, 0], [0, 0, 1])
    pose = xr_to_robot(Pose(np.array([0.1, 1.2, -0.3]), matrix_to_quat(rot([0, 1, 0], 0.4))))
    assert np.allclose(pose.position, [0.3, -0.1, 1.2])
    assert np.allclose(pose.rotation, XR_TO_ROBOT @ rot([0, 1, 0], 0.4))


def test_quaternion_helpers_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        v = rng.normal(size=3)
        v *= rng.uniform(0.01, 3.1) / np.linalg.norm(v)
        m = matrix_from_rotvec(v)
        assert np.allclose(rotvec_from_matrix(m), v, atol=1e-9)
        assert np.allclose(quat_to_matrix(matrix_to_quat(m)), m, atol=1e-12)


def test_button_hysteresis_reset_and_debounce():
    b = Button(on=0.6, off=0.4, debounce_s=0.5)
    assert not b.update(0.9, 0.0)  # held at the first value: not a press
    assert not b.update(0.5, 0.1) and b.held  # inside the band: still held
    assert not b.update(0.3, 0.2) and not b.held
    assert b.update(0.7, 0.3)
    assert not b.update(0.0, 0.4) and not b.update(1.0, 0.5)  # 0.2 s after the last press: bounce
    assert not b.update(0.0, 0.9) and b.update(1.0, 1.0)
    b.reset()
    assert not b.update(1.0, 2.0)
    with pytest.raises(ValueError):
        Button(on=0.3, off=0.5)


def engaged_clutch(**kw):
    clutch = ArmClutch(ClutchConfig(**kw))
    clutch.engage(Pose(np.array([1.0, 1.0, 1.0]), IDENTITY), Pose(np.array([0.5, 0.0, 0.4]), np.array([1.0, 0, 0, 0])))
    return clutch


def test_clutch_follows_relative_to_the_press_with_scale():
    clutch = engaged_clutch(scale=0.5, max_linear_speed=100.0)
    target = clutch.follow(Pose(np.array([1.1, 0.9, 1.2]), IDENTITY), dt=0.01)
    assert np.allclose(target.position, [0.55, -0.05, 0.5])
    assert np.allclose(target.quat, [1, 0, 0, 0])


def test_clutch_rotation_is_relative_and_scaled():
    clutch = engaged_clutch(rotation_scale=0.5, max_angular_speed=100.0)
    turn = rot([0, 0, 1], 0.8)
    target = clutch.follow(Pose(np.array([1.0, 1.0, 1.0]), matrix_to_quat(turn)), dt=0.01)
    assert np.allclose(target.rotation, rot([0, 0, 1], 0.4) @ quat_to_matrix([1, 0, 0, 0]))


def test_clutch_limits_speed_per_tick_and_clips_to_the_workspace():
    clutch = engaged_clutch(max_linear_speed=0.5, max_angular_speed=1.0)
    far = Pose(np.array([1.0, 1.0, 3.0]), matrix_to_quat(rot([1, 0, 0], 1.0)))
    first = clutch.follow(far, dt=0.01)
    assert np.isclose(np.linalg.norm(first.position - [0.5, 0.0, 0.4]), 0.005)
    angle = np.linalg.norm(rotvec_from_matrix(first.rotation @ quat_to_matrix([1, 0, 0, 0]).T))
    assert np.isclose(angle, 0.01)
    big_gap = clutch.follow(far, dt=5.0)  # a long frame gap moves no further than max_tick_s
    assert np.isclose(np.linalg.norm(big_gap.position - first.position), 0.5 * 0.05)
    for _ in range(200):
        last = clutch.follow(far, dt=0.02)
    assert np.allclose(last.position, [0.5, 0.0, 0.9])  # z clipped at the box's top
    with pytest.raises(ValueError):
        ClutchConfig(workspace_min=(0, 0, 1), workspace_max=(1, 1, 0.5))


def left(buttons=(), rotation=np.eye(3)):
    values = [0.0] * 8
    for index in buttons:
        values[index] = 1.0
    return schema.Controller(Pose(np.zeros(3), matrix_to_quat(rotation)), tuple(values), (0.0,) * 4)


def test_axis_table_buttons_mode():
    assert parse_table("x:z, y:-z, squeeze:-y")["squeeze"][0] == "-y"
    for bad in ("x:z,x:y", "menu:z", "x=z", "x:sideways", ""):
        with pytest.raises(ValueError):
            parse_table(bad)
    selector = AxisSelector(AxisConfig())
    assert selector.update(left(), 0.0, None) is None
    assert np.allclose(selector.update(left([schema.BUTTON_1]), 0.1, None), [0, 0, 1])
    assert selector.update(left([schema.BUTTON_1]), 0.2, None) is None  # held: no repeat
    assert np.allclose(selector.update(left([schema.BUTTON_2]), 0.3, None), [0, 0, -1])
    assert np.allclose(selector.update(left([schema.SQUEEZE]), 0.4, None), [0, -1, 0])
    assert selector.label == "-y"


def test_orientation_axis_down_weights_the_short_axis():
    # Controller at neutral, twisted about its own short axis (x) and about up (y) equally.
    twist = rot([1, 0, 0], 0.5) @ rot([0, 1, 0], 0.5)
    axis, angle = orientation_axis(twist, np.eye(3), np.eye(3), short_axis=0, weight=0.3)
    full, full_angle = orientation_axis(twist, np.eye(3), np.eye(3), short_axis=0, weight=1.0)
    assert angle < full_angle
    short_in_base = XR_TO_ROBOT @ twist[:, 0]
    assert abs(axis @ short_in_base) < abs(full @ short_in_base)
    # Pure rotation about XR up maps to the base z axis; a palm turned 180 deg about x sees -z.
    axis, _ = orientation_axis(rot([0, 1, 0], 0.6), np.eye(3), np.eye(3), 0, 0.3)
    assert np.allclose(axis, [0, 0, 1])
    axis, _ = orientation_axis(rot([0, 1, 0], 0.6), np.eye(3), rot([1, 0, 0], np.pi), 0, 0.3)
    assert np.allclose(axis, [0, 0, -1])


def test_orientation_mode_deadband_and_neutral():
    selector = AxisSelector(AxisConfig(mode="orientation", deadband_rad=0.3))
    assert selector.update(left(), 0.0, np.eye(3)) is None  # first sample: neutral
    assert selector.update(left(rotation=rot([0, 1, 0], 0.2)), 0.1, np.eye(3)) is None  # inside the deadband
    assert np.allclose(selector.update(left(rotation=rot([0, 1, 0], 0.6)), 0.2, np.eye(3)), [0, 0, 1])
    assert selector.update(left(rotation=rot([0, 1, 0], 0.7)), 0.3, np.eye(3)) is None  # same axis


def sample(t_ms, squeeze=0.0, trigger=0.0, a=0.0, position=(0.0, 1.0, -0.3), right=True):
    buttons = [trigger, squeeze, 0, 0, a, 0, 0, 0]
    controller = schema.Controller(Pose(np.array(position), IDENTITY), tuple(buttons), (0.0,) * 4)
    return schema.Sample("frame", int(t_ms), float(t_ms), None, controller if right else None)


def test_core_clutch_hold_and_latches():
    core = TeleopCore(TeleopConfig())
    core.on_connect(0.0)
    arm = Pose(np.array([0.5, 0.0, 0.4]), np.array([1.0, 0, 0, 0]))
    assert core.on_sample(sample(0, squeeze=1.0), 0.0, 0.0).target is None  # held at connect: no press
    assert core.on_sample(sample(10), 0.01, 0.01).target is None
    assert core.on_sample(sample(20, squeeze=1.0), 0.02, 0.02).target is None and core.hold_reason == "no arm pose"
    core.on_arm_state(arm, fault=False)
    core.on_sample(sample(30), 0.03, 0.03)
    out = core.on_sample(sample(40, squeeze=1.0), 0.04, 0.04)
    assert np.allclose(out.target.position, arm.position) and core.following
    out = core.on_sample(sample(50, squeeze=1.0, position=(0.0, 1.001, -0.3)), 0.05, 0.05)
    assert np.allclose(out.target.position, [0.5, 0.0, 0.401])
    assert core.tick(0.1) is None  # following: nothing to hold
    held = core.tick(0.3)  # 250 ms without a frame: stale, hold
    assert not core.following and core.hold_reason == "stale" and np.allclose(held.position, [0.5, 0, 0.401])
    assert core.on_sample(sample(300, squeeze=1.0), 0.30, 0.30).target is None  # needs a new press
    core.on_sample(sample(310), 0.31, 0.31)
    assert core.on_sample(sample(320, squeeze=1.0), 0.32, 0.32).target is not None
    core.on_arm_state(arm, fault=True)
    assert not core.following and core.tick(0.33) is None and core.clutch.target is None  # reflex: nothing
    core.on_arm_state(arm, fault=False)
    core.on_sample(sample(340), 0.34, 0.34)
    core.on_disconnect()
    assert core.hold_reason == "disconnected"


def test_core_idle_messages_hold():
    core = TeleopCore(TeleopConfig())
    core.on_connect(0.0)
    core.on_arm_state(Pose(np.array([0.5, 0.0, 0.4]), IDENTITY), fault=False)
    core.on_sample(sample(0), 0.0, 0.0)
    core.on_sample(sample(10, squeeze=1.0), 0.01, 0.01)
    assert core.following
    out = core.on_sample(schema.Sample("idle", 3, 20.0), 0.02, 0.02)
    assert out.target is None and not core.following and core.hold_reason == "not in VR"
    assert core.on_sample(sample(30, squeeze=1.0), 0.03, 0.03).target is None  # back in VR, squeeze held: no press


def test_core_detects_a_lagging_stream_from_page_times():
    core = TeleopCore(TeleopConfig())
    core.on_connect(0.0)
    core.on_arm_state(Pose(np.array([0.5, 0.0, 0.4]), IDENTITY), fault=False)
    core.on_sample(sample(1000), 0.0, 100.0)  # page clock 99 s behind: the offset cancels
    core.on_sample(sample(1010, squeeze=1.0), 0.01, 100.01)
    assert core.following
    out = core.on_sample(sample(1020, squeeze=1.0), 0.02, 100.32)  # arrived 300 ms late
    assert out.target is None and not core.following and core.hold_reason == "stale"


def test_core_policy_toggle_and_recovery():
    core = TeleopCore(TeleopConfig())
    core.on_connect(0.0)
    core.on_sample(sample(0), 0.0, 0.0)
    assert core.on_sample(sample(10, trigger=1.0), 0.01, 0.01).policy_request is True
    core.policy_enabled = True
    core.on_sample(sample(20), 0.02, 0.02)
    assert core.on_sample(sample(30, trigger=1.0), 0.03, 0.03).policy_request is None  # debounced
    core.on_sample(sample(600), 0.6, 0.6)
    assert core.on_sample(sample(610, trigger=1.0), 0.61, 0.61).policy_request is False
    assert core.on_sample(sample(620, a=1.0), 0.62, 0.62).recover
    assert core.status()["policy"] == "on"


def test_parameters_build_configs_and_name_bad_values():
    values = {name: default for name, (default, _) in PARAMETERS.items()}
    server, teleop = build_configs(values)
    assert server.bind == "0.0.0.0" and teleop.clutch.scale == 1.0
    for name, bad in (("scale", -1.0), ("axis_mode", "wiggle"), ("palm_in_flange", [0.0, 1.0]),
                      ("workspace_min", [1.0, 1.0, 1.0]), ("arm_source", "telepathy")):
        with pytest.raises(ValueError, match="teleop parameters"):
            build_configs({**values, name: bad})
    with pytest.raises(ValueError, match="loopback"):
        build_configs({**values, "https": False, "bind": "0.0.0.0"})


def test_franka_fault():
    class Errors:
        joint_position_limits_violation = False
        cartesian_reflex = False

        @staticmethod
        def get_fields_and_field_types():
            return {"joint_position_limits_violation": "boolean", "cartesian_reflex": "boolean"}

    assert not franka_fault(2, Errors())
    assert franka_fault(4, Errors())  # REFLEX
    errors = Errors()
    errors.cartesian_reflex = True
    assert franka_fault(2, errors)
