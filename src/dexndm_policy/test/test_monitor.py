"""Monitor metrics on synthetic runs with known answers."""
import math

import numpy as np
import pytest

from dexndm_description.wrist import parse_wrist
from dexndm_policy.monitor import RotationMonitor, quat_multiply


def axis_angle_quat(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.concatenate([axis * math.sin(angle / 2), [math.cos(angle / 2)]])


def run(monitor, world_axis, rate_rad_s, ticks=60, fall_tick=None):
    """Object spinning at rate_rad_s about world_axis, one pose per 50 ms tick; commands 5 ms after states."""
    monitor.on_command(99.0, 4999.0, np.zeros(16))  # a command answering an earlier state starts the run
    for k in range(ticks):
        stamp, wall = 100.0 + 0.05 * k, 5000.0 + 0.01 * k
        monitor.on_state(stamp, wall)
        position = np.array([0.0, 0.0, 0.5]) if fall_tick is None or k < fall_tick else np.array([0.0, 0.0, 0.3])
        monitor.on_object_pose(stamp, position, axis_angle_quat(world_axis, rate_rad_s * 0.05 * k))
        monitor.on_command(stamp, wall + 0.005, np.full(16, 0.1 * k))


def test_rotation_about_the_palm_axis_seen_through_the_wrist():
    # palm_up = 180 deg about x: palm z points down in the world, so +z (palm) spins about -z (world).
    monitor = RotationMonitor(duration_s=2.0, axis="z", wrist="palm_up")
    run(monitor, [0, 0, -1], rate_rad_s=1.0)
    s = monitor.summary()
    # 60 ticks are sent; the run ends at 2.0 s (tick 40): later states, poses and commands do not count.
    assert s["rot_rad"] == pytest.approx(40 * 0.05, rel=1e-6)
    assert s["fell"] == 0 and s["ttf_s"] == pytest.approx(2.0) and s["run_s"] == pytest.approx(2.0)
    assert s["commands"] == 41
    assert s["latency_p50_ms"] == pytest.approx(5.0, abs=1e-6) and s["rate_hz"] == pytest.approx(100.0)
    assert monitor.done


def test_rotation_against_the_axis_is_negative_and_off_axis_spin_counts_little():
    monitor = RotationMonitor(duration_s=10.0, axis="z", wrist="palm_down")
    run(monitor, [0, 0, -1], rate_rad_s=0.5)
    assert monitor.summary()["rot_rad"] == pytest.approx(-59 * 0.025, rel=1e-6)
    monitor = RotationMonitor(duration_s=10.0, axis="z", wrist="palm_down")
    run(monitor, [1, 0, 0], rate_rad_s=0.5)
    assert abs(monitor.summary()["rot_rad"]) < 1e-9
    assert not monitor.done


def test_fall_stops_counting_and_sets_time_to_fall():
    monitor = RotationMonitor(duration_s=10.0, axis="x", wrist=parse_wrist("palm_down"))
    run(monitor, [1, 0, 0], rate_rad_s=1.0, fall_tick=21)
    s = monitor.summary()
    assert s["fell"] == 1 and s["ttf_s"] == pytest.approx(21 * 0.05)
    assert s["rot_rad"] == pytest.approx(21 * 0.05, rel=1e-6)


def test_without_object_pose_rotation_and_fall_are_nan_but_timing_works(tmp_path):
    monitor = RotationMonitor(duration_s=1.0)
    monitor.on_state(-1.0, -1.0)
    assert monitor.start is None  # no command seen yet: the run has not started
    monitor.on_command(-1.0, -0.998, np.zeros(16))
    for k in range(30):
        monitor.on_state(float(k) * 0.05, k * 0.05)
        monitor.on_command(float(k) * 0.05, k * 0.05 + 0.002, np.zeros(16))
    s = monitor.summary()
    assert math.isnan(s["rot_rad"]) and math.isnan(s["ttf_s"]) and s["latency_p99_ms"] == pytest.approx(2.0)
    line = RotationMonitor.format(s)
    assert line.startswith("rot_rad=nan ttf_s=nan rate_hz=20.0000 latency_p50_ms=2.0000")
    monitor.plot(str(tmp_path / "plot.png"))
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_quaternion_product_composes_rotations():
    a, b = axis_angle_quat([0, 0, 1], 0.3), axis_angle_quat([0, 0, 1], 0.4)
    np.testing.assert_allclose(quat_multiply(a, b), axis_angle_quat([0, 0, 1], 0.7), atol=1e-12)


def test_memory_stays_bounded_over_many_states(tmp_path):
    """A long fast run: ~590 B per state used to pile up (78 -> 214 MiB in 8.5 min). The figures must stay
    right while the memory stays flat: running metrics, a latency reservoir, a decimated plot trace.

    The plot trace is made small (250 points) so that it, like the 1000-entry matching windows, is at its
    bound after the first 1,500 states; from then on 4,000 more states may add less than 50 B each (the old
    leak would add 2.4 MB). tracemalloc makes every state ~5x slower, so the run is no longer than that."""
    import tracemalloc

    monitor = RotationMonitor(duration_s=1e9, axis="z", wrist="palm_down", trace_points=250)
    monitor.on_command(-1.0, -1.0, np.zeros(16))
    targets = np.linspace(0.0, 1.0, 16)

    def ticks(first, last):
        for k in range(first, last):
            stamp, wall = 0.05 * k, 0.01 * k
            monitor.on_state(stamp, wall)
            monitor.on_object_pose(stamp, [0.0, 0.0, 0.5], axis_angle_quat([0, 0, 1], 0.001 * k))
            monitor.on_command(stamp, wall + 0.003, targets)

    tracemalloc.start()
    try:
        ticks(0, 1_500)
        before = tracemalloc.get_traced_memory()[0]
        ticks(1_500, 5_500)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 200_000, f"grew {after - before} B over 4,000 states"
    s = monitor.summary()
    assert s["commands"] == 5_500 and s["rate_hz"] == pytest.approx(100.0)
    assert s["latency_p50_ms"] == pytest.approx(3.0) and s["rot_rad"] == pytest.approx(0.001 * 5_499, rel=1e-6)
    assert 125 <= len(monitor.angles) <= 250 and monitor.angles.times[-1] > 0.9 * s["run_s"]
    assert monitor.angles.stride >= 16  # decimated several times over: the bound held, not a big enough buffer
    monitor.plot(str(tmp_path / "long.png"))
    assert (tmp_path / "long.png").read_bytes()[:4] == b"\x89PNG"


def test_gap_figures_join_the_line_only_when_the_gap_monitor_ran():
    quiet = RotationMonitor(duration_s=1.0)
    run(quiet, [0, 0, -1], 0.5, ticks=30)
    assert "gap_mean_mrad" not in RotationMonitor.format(quiet.summary())
    monitor = RotationMonitor(duration_s=1.0)
    monitor.on_gap(50.0, 1.0, True)  # before the run: ignored
    run(monitor, [0, 0, -1], 0.5, ticks=30)
    for k in range(20):
        monitor.on_gap(100.0 + 0.05 * k, 0.002 if k < 19 else 0.022, k >= 18)
    s = monitor.summary()
    assert s["gap_ticks"] == 20 and s["gap_out_of_range"] == 2
    assert s["gap_mean_mrad"] == pytest.approx(3.0) and s["gap_p95_mrad"] == pytest.approx(3.0, abs=0.01)
    assert RotationMonitor.format(s).endswith("gap_mean_mrad=3.0000 gap_p95_mrad=3.0000 gap_ticks=20 gap_out_of_range=2")


def test_joint_trajectory_runs_from_the_first_answered_state_to_the_end():
    monitor = RotationMonitor(duration_s=0.5)
    monitor.on_state(0.0, 0.0, np.full(16, -1.0))  # before any command: not part of the run
    for k in range(1, 30):
        stamp = 0.05 * k
        monitor.on_state(stamp, stamp, np.full(16, float(k)))
        monitor.on_command(stamp, stamp + 0.001, np.zeros(16))
    q = monitor.joint_trajectory()
    # the first command answered the state of tick 1; the run ends 0.5 s after its start (tick 2) = tick 12
    assert monitor.first_command_stamp == pytest.approx(0.05)
    np.testing.assert_array_equal(q[:, 0], np.arange(1, 13))
    assert q.shape == (12, 16)
    assert RotationMonitor(duration_s=1.0).joint_trajectory().shape == (0, 16)


def test_source_reference_reproduces_its_own_run_and_refuses_bad_input():
    from dexndm_description import hand
    from dexndm_policy.source_reference import source_world_run, tracking_error

    a = source_world_run(hand.CANONICAL_POSE, 6, wrist="palm_up")
    b = source_world_run(hand.CANONICAL_POSE, 6, wrist="palm_up")
    assert a.shape == (7, 16) and tracking_error(a, b) == 0.0  # deterministic
    held = source_world_run(hand.CANONICAL_POSE, 6, wrist="palm_up", hold_ticks=3)
    assert tracking_error(a, held) > 0  # starting three ticks later is another run
    assert tracking_error(a, a + 0.01) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="equally long"):
        tracking_error(a, a[:3])
    with pytest.raises(ValueError, match="16 finite joint angles"):
        source_world_run(np.full(16, np.nan), 3)
