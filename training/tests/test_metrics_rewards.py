"""Reward terms and the paper's metrics on synthetic trajectories with known answers."""
import numpy as np
import pytest

from dexndm_description import hand
from dexndm_training import metrics, rewards, rotations

DT = 0.05


def spin(axis, omega, steps, episodes=1, off_axis=None):
    """A constant spin about `axis` (plus an optional constant off-axis rate): orientations and angular velocities."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    w = omega * axis if off_axis is None else omega * axis + np.asarray(off_axis, float)
    speed = np.linalg.norm(w)
    t = np.arange(steps + 1) * DT
    quat = rotations.from_axis_angle(np.broadcast_to(w / speed, (steps + 1, 3)), speed * t)
    quat = np.broadcast_to(quat, (episodes, steps + 1, 4)).copy()
    angvel = np.broadcast_to(w, (episodes, steps, 3)).copy()
    return quat, angvel, np.broadcast_to(axis, (episodes, 3)).copy()


def test_constant_spin_about_the_axis_gives_omega_t_and_no_precession():
    quat, angvel, axis = spin([0.3, -0.2, 1.0], omega=1.1, steps=400, episodes=3)
    m = metrics.episode_metrics(quat, angvel, axis, alive=np.full(3, 400), episode_steps=400)
    np.testing.assert_allclose(m["rot"], 1.1 * 400 * DT, rtol=1e-9)  # Rot = omega T = 22 rad
    np.testing.assert_allclose(m["rotp"], 0.0, atol=1e-12)
    np.testing.assert_allclose(m["rotr"], 1.1 * 400)
    np.testing.assert_allclose(m["ttf"], 1.0)


def test_fall_truncates_rotation_and_ttf_and_off_axis_spin_shows_as_precession():
    quat, angvel, axis = spin([0, 0, 1], omega=0.8, steps=400, episodes=2, off_axis=[0.2, 0, 0])
    m = metrics.episode_metrics(quat, angvel, axis, alive=np.array([400, 100]), episode_steps=400)
    np.testing.assert_allclose(m["ttf"], [1.0, 0.25])
    np.testing.assert_allclose(m["rotp"], 0.2, rtol=1e-9)
    np.testing.assert_allclose(m["rotr"], [0.8 * 400, 0.8 * 100])
    # Precession makes the orientation path differ from a pure spin; the axial part still dominates.
    assert m["rot"][1] == pytest.approx(m["rot"][0] / 4, rel=1e-6)
    assert 0.7 * 0.8 * 20 < m["rot"][0] < 1.05 * 0.8 * 20


def test_steps_after_a_fall_cannot_poison_the_metrics():
    quat, angvel, axis = spin([0, 0, 1], omega=1.0, steps=40, episodes=1)
    quat[:, 21:] = 0.0  # whatever a recorder left after the fall (a zero quaternion)
    angvel[:, 20:] = np.nan
    m = metrics.episode_metrics(quat, angvel, axis, alive=np.array([20]), episode_steps=40, goal_angle=np.array([0.9]))
    np.testing.assert_allclose([m["rot"][0], m["rotr"][0], m["rotp"][0], m["ttf"][0]], [1.0, 20.0, 0.0, 0.5], atol=1e-9)
    assert m["go_success"][0] == 1.0


def test_reverse_spin_counts_negative_and_go_success_needs_the_goal_reached():
    quat, angvel, axis = spin([1, 0, 0], omega=-0.5, steps=400, episodes=3)
    m = metrics.episode_metrics(quat, angvel, axis, alive=np.array([400, 400, 40]), episode_steps=400,
                                goal_angle=np.array([-3.0, 3.0, -3.0]))
    np.testing.assert_allclose(m["rot"], [-10.0, -10.0, -1.0], rtol=1e-9)
    # Goal -3 rad is passed by a -10 rad spin; +3 rad (= -3.28 rad, more than 0.1 pi off -3 rad... reached later
    # at -2pi+3) is also reached by a full spin; with 40 steps (-1 rad) the -3 rad goal is not.
    np.testing.assert_array_equal(m["go_success"], [1.0, 1.0, 0.0])
    summary = metrics.summarize(m)
    assert summary["episodes"] == 3 and summary["ttf"] == pytest.approx(0.7)


def test_rotation_term_is_clipped_and_signed():
    axis = np.array([[0, 0, 1.0]] * 3)
    w = np.array([[0, 0, 2.0], [0, 0, -0.2], [1.0, 0, 0.1]])
    np.testing.assert_allclose(rewards.rotation_term(w, axis), [0.5, -0.2, 0.1])
    np.testing.assert_allclose(rewards.off_axis_term(w, axis), [0.0, 0.0, 1.0])


def test_penalty_terms_have_their_units_and_zeros():
    q = np.stack([hand.CANONICAL_POSE, hand.CANONICAL_POSE + 0.1])
    np.testing.assert_allclose(rewards.pose_term(q), [0.0, 16 * 0.01])
    tau = np.array([[1.0] + [0.0] * 15, [0.5] * 16])
    qdot = np.array([[-2.0] + [0.0] * 15, [0.0] * 16])
    np.testing.assert_allclose(rewards.work_term(tau, qdot), [2.0, 0.0])
    np.testing.assert_allclose(rewards.torque_term(tau), [1.0, 4.0])
    np.testing.assert_allclose(rewards.linear_velocity_term(np.array([[3.0, 4.0, 0.0]])), [5.0])


def test_rotation_weight_ramps_between_resets_10_and_100():
    w = rewards.rotation_weight(np.array([0, 10, 55, 100, 1000]))
    np.testing.assert_allclose(w, [0.0, 0.0, 0.05, 0.1, 0.1])


def test_waypoint_is_90_degrees_ahead_and_renewed_within_15_degrees():
    axis = np.array([[0, 0, 1.0], [0, 1.0, 0]])
    start = np.tile([0, 0, 0, 1.0], (2, 1))
    wp = rewards.Waypoints(2)
    wp.reset(start, axis)
    np.testing.assert_allclose(wp.distance(start), np.pi / 2)
    # Turn env 0 by 80 deg about its axis (10 deg short: reached), env 1 by 70 deg (20 deg short: not yet).
    now = rotations.from_axis_angle(axis, np.deg2rad([80.0, 70.0]))
    np.testing.assert_array_equal(wp.update(now, axis), [1.0, 0.0])
    np.testing.assert_allclose(wp.distance(now), [np.pi / 2, np.deg2rad(20.0)])  # env 0 has a new goal ahead
    # Turning the wrong way never reaches it.
    back = rotations.from_axis_angle(axis, np.deg2rad([-30.0, -30.0]))
    np.testing.assert_array_equal(wp.update(back, axis), [0.0, 0.0])


def test_total_reward_sums_weighted_terms():
    cfg = rewards.RewardConfig()
    n = 2
    total, terms = rewards.total_reward(
        cfg, a_rot=0.1, r_goal=np.array([1.0, 0.0]), angvel=np.array([[0, 0, 1.0], [0, 0, 0.0]]),
        linvel=np.zeros((n, 3)), axis=np.array([[0, 0, 1.0]] * n), q=np.tile(hand.CANONICAL_POSE, (n, 1)),
        qdot=np.zeros((n, 16)), torque=np.zeros((n, 16)), fallen=np.array([False, True]))
    np.testing.assert_allclose(total, [0.1 * 0.5 + 1.0, -cfg.fall])
    assert set(terms) == {"rotation", "goal", "off_axis", "linear_velocity", "pose", "work", "torque", "fall"}
