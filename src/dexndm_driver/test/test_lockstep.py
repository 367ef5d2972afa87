"""The sim backend in lockstep and the emulated bus backed by the target world's physics."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from dexndm_description import hand
from dexndm_description.wrist import parse_wrist
from dexndm_driver.backends import EmulatedBackend, SimBackend, WorldConfig, parse_object
from dexndm_driver.driver import DriverConfig, HandDriver
from dexndm_driver.states import DriverState
from driver_support import ManualClock, bring_up

TICK_NS = 50_000_000


def run_driver(sink, config, answer=True, object="normal_cylinder", target=None, wrist="palm_up", scene="grasp",
               clock=None):
    """The driver on the sim backend, with a policy stand-in that answers each state as it is published."""
    backend = SimBackend(WorldConfig(parse_wrist(wrist), parse_object(object), scene=scene), hand.CANONICAL_POSE)
    driver = HandDriver(backend, sink, config, clock)
    stop = threading.Event()

    def policy():
        answered = 0
        while not stop.is_set():
            if sink.wait_until(lambda: stop.is_set() or len(sink.states) > answered, timeout=1.0) and not stop.is_set():
                answered = len(sink.states)
                driver.submit(hand.CANONICAL_POSE if target is None else target, sink.states[-1][0])

    thread = threading.Thread(target=policy, daemon=True)
    bring_up(driver)
    if answer:
        thread.start()

    def finish():
        stop.set()
        with sink._changed:
            sink._changed.notify_all()
        if answer:
            thread.join()
        driver.stop()

    return driver, backend, finish


def test_lockstep_steps_once_per_answered_state_with_sim_time_stamps(sink):
    driver, backend, stop = run_driver(sink, DriverConfig(realtime_factor=0.0, use_sim_time=True))
    try:
        assert sink.wait_until(lambda: len(sink.states) >= 30, timeout=30.0)
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


def test_lockstep_holds_after_command_timeout_and_counts_each_lapse_once(sink):
    """Unanswered, the sim waits exactly command_timeout of its clock per state, then holds. The watchdog
    counts a lapse once however many ticks it lasts (DRIVER.md), as on the bus backends."""
    clock = ManualClock()
    driver, backend, stop = run_driver(sink, DriverConfig(realtime_factor=0.0, use_sim_time=True, command_timeout=0.1),
                                       answer=False, object="none", clock=clock)
    try:
        for k in range(5):
            assert sink.wait_until(lambda: len(sink.states) == k + 1)
            deadline = clock.wait_for_waiter()
            assert deadline == pytest.approx(clock.monotonic() + 0.1)  # waiting for the answer to state k
            waits = clock.waits
            clock.advance(0.09)
            assert clock.wait_for_waiter(after=waits) == pytest.approx(deadline)  # woke, still waiting
            assert len(sink.states) == k + 1, "no step before command_timeout"
            clock.advance_to(deadline)
        assert sink.wait_until(lambda: len(sink.states) == 6)
        assert driver.stats.watchdog_timeouts == 1 and driver.stats.holding
        driver.submit(hand.CANONICAL_POSE, sink.states[-1][0])  # an answer ends the lapse ...
        assert sink.wait_until(lambda: len(sink.states) == 7) and not driver.stats.holding
        for k in range(3):  # ... and the next one counts again, once
            clock.advance_to(clock.wait_for_waiter())
            assert sink.wait_until(lambda: len(sink.states) == 8 + k)
        assert driver.stats.watchdog_timeouts == 2 and driver.stats.holding
    finally:
        stop()
    assert not sink.worlds or sink.worlds[-1][1].object_pose is None
    assert np.allclose(sink.states[-1][1].q, hand.CANONICAL_POSE, atol=0.15), "holding must keep the hand near its pose"


def test_realtime_factor_one_keeps_absolute_tick_deadlines(sink):
    """At realtime_factor 1 state k+1 is due at t0 + (k+1) x 50 ms of the driver's clock, however long the
    answer took (answer time is absorbed, not added); more than a tick behind, the schedule restarts."""
    clock = ManualClock()
    driver, backend, stop = run_driver(sink, DriverConfig(realtime_factor=1.0, use_sim_time=True), answer=False,
                                       object="none", clock=clock)
    t0 = clock.monotonic()
    due = []
    try:
        for k, answer_s in enumerate([0.0, 0.03, 0.049, 0.01, 0.2, 0.0]):
            assert sink.wait_until(lambda: len(sink.states) == k + 1)
            clock.advance(answer_s)
            driver.submit(hand.CANONICAL_POSE, sink.states[-1][0])
            waits = clock.waits
            if k < 4:  # on time: the driver waits for the tick deadline
                due.append(clock.wait_for_waiter(after=waits) - t0)
                clock.advance_to(t0 + due[-1])
            elif k == 4:  # 0.2 s late (behind 0.15 s): the state goes out at once, deadlines restart from now
                assert sink.wait_until(lambda: len(sink.states) == 6)
            else:
                assert clock.wait_for_waiter(after=waits) == pytest.approx(clock.monotonic() + 0.05)
    finally:
        stop()
    assert due == pytest.approx([0.05, 0.10, 0.15, 0.20])
    assert driver.stats.accepted == 6 and driver.stats.watchdog_timeouts == 0


def test_lockstep_commands_move_the_hand_and_stale_ones_are_refused(sink):
    target = hand.CANONICAL_POSE.copy()
    target[3] += 0.4  # curl the index DIP
    driver, backend, stop = run_driver(sink, DriverConfig(realtime_factor=0.0), target=target, object="none")
    try:
        assert sink.wait_until(lambda: len(sink.states) >= 20, timeout=30.0)
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
    bring_up(driver)
    try:
        assert sink.wait_until(lambda: sink.states, timeout=20.0)
        for _ in range(20):
            n = len(sink.states)
            assert sink.wait_until(lambda: len(sink.states) > n, timeout=5.0)
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
        assert closing.wait_until(lambda: len(closing.states) >= 3, timeout=20.0)
        closing.is_closed = True
        driver._thread.join(timeout=10.0)
        assert not driver._thread.is_alive()
    finally:
        stop()
    assert not [m for level, m in closing.logs if level == "error"], closing.logs
    assert driver.stats.last_error == "" and driver.state is DriverState.FINALIZED
