"""The sim backend in lockstep and the emulated bus backed by the target world's physics."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dexndm_description import hand
from dexndm_description.wrist import parse_wrist
from dexndm_driver.backends import EmulatedBackend, SimBackend, WorldConfig, parse_object
from dexndm_driver.driver import DriverConfig, HandDriver
from dexndm_driver.testing import wait_for

pytest.importorskip("dexndm_description.sim", reason="needs the simulated hand (dexndm_description.sim)")

TICK_NS = 50_000_000


def run_driver(sink, config, answer=True, object="normal_cylinder", target=None, wrist="palm_up", scene="grasp"):
    backend = SimBackend(WorldConfig(parse_wrist(wrist), parse_object(object), scene=scene), hand.CANONICAL_POSE)
    driver = HandDriver(backend, sink, config)
    stop = threading.Event()

    def policy():
        answered = 0
        while not stop.is_set():
            if answer and len(sink.states) > answered:
                answered = len(sink.states)
                driver.submit(hand.CANONICAL_POSE if target is None else target, sink.states[-1][0])
            time.sleep(0.001)

    thread = threading.Thread(target=policy, daemon=True)
    driver.start()
    thread.start()
    return driver, backend, lambda: (stop.set(), thread.join(), driver.stop())


def test_lockstep_steps_once_per_answered_state_with_sim_time_stamps(sink):
    driver, backend, stop = run_driver(sink, DriverConfig(realtime_factor=0.0, use_sim_time=True))
    try:
        assert wait_for(lambda: len(sink.states) >= 30, timeout=20.0)
    finally:
        stop()
    stamps = [s for s, _ in sink.states]
    assert stamps[0] == 0 and np.all(np.diff(stamps[:30]) == TICK_NS)
    assert sink.clocks[:30] == stamps[:30]  # /clock leads each state with the same sim time
    assert driver.stats.watchdog_timeouts == 0 and driver.stats.refused["stale"] == 0
    assert driver.stats.accepted >= 29 and len(sink.worlds) == len(sink.states)
    pose = sink.worlds[-1][1].object_pose
    assert pose.shape == (7,) and np.isclose(np.linalg.norm(pose[3:]), 1.0)
    assert np.allclose(sink.worlds[-1][1].wrist_quat, [1.0, 0.0, 0.0, 0.0])


def test_lockstep_holds_after_command_timeout(sink):
    target = hand.CANONICAL_POSE.copy()
    driver, backend, stop = run_driver(sink, DriverConfig(realtime_factor=0.0, use_sim_time=True,
                                                          command_timeout=0.1), answer=False, object="none")
    try:
        assert wait_for(lambda: len(sink.states) >= 6, timeout=10.0)
        t0, n0 = time.monotonic(), len(sink.states)
        assert wait_for(lambda: len(sink.states) >= n0 + 5, timeout=10.0)
        per_tick = (time.monotonic() - t0) / (len(sink.states) - n0)
    finally:
        stop()
    assert 0.08 < per_tick < 0.3, f"{per_tick:.3f} s per held tick, want ~command_timeout"
    assert driver.stats.watchdog_timeouts >= 5 and driver.stats.holding
    assert not sink.worlds or sink.worlds[-1][1].object_pose is None
    assert np.allclose(sink.states[-1][1].q, target, atol=0.15), "holding must keep the hand near its pose"


def test_realtime_factor_one_paces_to_the_wall_clock(sink):
    # The Chaos Box's physics takes a noticeable part of a tick: it must not lengthen the period.
    driver, backend, stop = run_driver(sink, DriverConfig(realtime_factor=1.0, use_sim_time=True),
                                       wrist="palm_down", scene="chaos_box")
    try:
        assert wait_for(lambda: len(sink.states) >= 3, timeout=10.0)
        t0, n0 = time.monotonic(), len(sink.states)
        time.sleep(2.0)
        rate = (len(sink.states) - n0) / (time.monotonic() - t0)
    finally:
        stop()
    assert 19.0 < rate < 20.6, f"{rate:.2f} ticks/s at realtime_factor 1, want 20"


def test_lockstep_commands_move_the_hand_and_stale_ones_are_refused(sink):
    target = hand.CANONICAL_POSE.copy()
    target[3] += 0.4  # curl the index DIP
    driver, backend, stop = run_driver(sink, DriverConfig(realtime_factor=0.0), target=target, object="none")
    try:
        assert wait_for(lambda: len(sink.states) >= 20, timeout=20.0)
        stale = driver.submit(target, sink.states[0][0])
    finally:
        stop()
    assert stale.reason == "stale" and driver.stats.refused["stale"] >= 1
    assert abs(sink.states[-1][1].q[3] - target[3]) < 0.1


def test_emulated_bus_with_physics_moves_the_simulated_hand(sink):
    backend = EmulatedBackend(WorldConfig(parse_wrist("palm_up")), hand.CANONICAL_POSE, motor_model="physics")
    driver = HandDriver(backend, sink, DriverConfig())
    target = hand.CANONICAL_POSE.copy()
    target[15] += 0.3  # thumb IP
    driver.start()
    try:
        assert wait_for(lambda: driver.stats.state == "active" and sink.states, timeout=20.0)
        for _ in range(20):
            n = len(sink.states)
            assert wait_for(lambda: len(sink.states) > n, timeout=2.0)
            driver.submit(target, sink.states[-1][0])
        q = sink.states[-1][1].q
        pose = sink.worlds[-1][1].object_pose
    finally:
        driver.stop()
    assert abs(q[15] - target[15]) < 0.1, f"thumb IP at {q[15]:.3f}, target {target[15]:.3f}"
    assert pose is not None and pose.shape == (7,)
    assert backend.physics.dropped_ticks == 0
    assert np.any(np.abs(sink.states[-1][1].effort) > 0), "servo current must come from the physics"


def test_a_shut_down_sink_ends_the_loop_quietly_with_torque_off(sink):
    """SIGINT shuts the ROS context down before the node calls stop(): the next publish fails. That is a
    normal exit (no 'driver loop failed' error), and the shutdown path still runs."""

    class ClosingSink(type(sink)):
        is_closed = False

        def closed(self):
            return self.is_closed

        def state(self, reading, stamp_ns):
            if self.is_closed:
                raise RuntimeError("Failed to publish: publisher's context is invalid")
            super().state(reading, stamp_ns)

    closing = ClosingSink()
    driver, backend, stop = run_driver(closing, DriverConfig(realtime_factor=1.0, use_sim_time=True))
    try:
        assert wait_for(lambda: len(closing.states) >= 3, timeout=20.0)
        closing.is_closed = True
        assert wait_for(lambda: not driver._thread.is_alive(), timeout=10.0)
    finally:
        stop()
    assert not [m for level, m in closing.logs if level == "error"], closing.logs
    assert driver.stats.last_error == "" and driver.stats.state == "finalized"
