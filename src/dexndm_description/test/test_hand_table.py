import math

import numpy as np
import pytest

from dexndm_description import hand


def test_sixteen_joints_in_motor_id_order():
    assert hand.MOTOR_IDS == tuple(range(16))
    assert hand.JOINT_NAMES[:4] == ("if_abd", "if_mcp", "if_pip", "if_dip")
    assert hand.JOINT_NAMES[12:] == ("th_cmc", "th_axl", "th_mcp", "th_ipl")
    assert len(set(hand.JOINT_NAMES)) == 16


def test_limits_match_the_leap_hand_table():
    assert hand.LOWER[13] == pytest.approx(-0.47) and hand.UPPER[13] == pytest.approx(2.443)
    assert hand.LOWER[15] == pytest.approx(-1.34) and hand.UPPER[15] == pytest.approx(1.88)
    for finger in range(3):  # index, middle and ring share limits
        np.testing.assert_allclose(hand.LOWER[4 * finger:4 * finger + 4], [-1.047, -0.314, -0.506, -0.366])
        np.testing.assert_allclose(hand.UPPER[4 * finger:4 * finger + 4], [1.047, 2.23, 1.885, 2.042])
    assert np.all(hand.LOWER < hand.UPPER)


@pytest.mark.parametrize("pose", ["CANONICAL_POSE", "OPEN_POSE", "MID"])
def test_every_default_pose_is_inside_the_limits(pose):
    q = getattr(hand, pose)
    assert q.shape == (16,)
    assert hand.within_limits(q)


def test_gains_are_positive_and_sixteen_long():
    assert hand.SIM_KP.shape == hand.SIM_KD.shape == (16,)
    assert np.all(hand.SIM_KP > 0) and np.all(hand.SIM_KD > 0)


def test_abduction_motors_get_three_quarter_gains():
    assert hand.servo_gains(0) == (600, 0, 150)
    assert hand.servo_gains(4) == (600, 0, 150)
    assert hand.servo_gains(1) == (800, 0, 200)


def test_ticks_round_trip_and_zero_is_mid_encoder():
    assert hand.sim_to_ticks(np.zeros(16)).tolist() == [2048] * 16
    rng = np.random.default_rng(0)
    q = rng.uniform(hand.LOWER, hand.UPPER, size=(1000, 16))
    back = hand.ticks_to_sim(hand.sim_to_ticks(q))
    assert np.max(np.abs(back - q)) <= hand.RAD_PER_TICK / 2 + 1e-12
    ticks = np.arange(0, 4096)
    assert np.array_equal(hand.sim_to_ticks(hand.ticks_to_sim(ticks)), ticks)


def test_clip_to_limits_clamps_out_of_range_targets():
    q = np.full(16, 10.0)
    assert np.array_equal(hand.clip_to_limits(q), hand.UPPER)
    assert np.array_equal(hand.clip_to_limits(-q), hand.LOWER)


def test_unit_conversions():
    assert hand.velocity_units_to_rad_s(1) == pytest.approx(0.229 * 2 * math.pi / 60)
    assert hand.current_units_to_amps(350) == pytest.approx(0.35)


def test_mjcf_chain_order_is_a_permutation():
    assert sorted(hand.MJCF_CHAIN_TO_MOTOR) == list(range(16))
