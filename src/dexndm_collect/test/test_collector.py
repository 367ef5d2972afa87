"""The replay-and-log loop without ROS: lockstep answers, reset phase, episode files, faults."""
import json

import numpy as np
import pytest

from dexndm_collect import bag, verify
from dexndm_collect.collector import ABORT, END, START, CollectionRun
from dexndm_collect.sources import ReplaySource
from dexndm_description import hand


class Outputs:
    """Serializes what the loop sends with the rosbags typestore, as the node does with rclpy."""

    def __init__(self, store):
        self.store, self.commands, self.events = store, [], []
        T, H = store.types["builtin_interfaces/msg/Time"], store.types["std_msgs/msg/Header"]
        self.T, self.H = T, H

    def command(self, target, state_stamp_ns):
        self.commands.append((np.array(target), state_stamp_ns))
        msg = self.store.types["dexndm_msgs/msg/HandCommand"](
            header=self.H(stamp=self.T(sec=0, nanosec=0), frame_id=""),
            state_stamp=self.T(*divmod(state_stamp_ns, 10**9)), position=np.asarray(target, dtype=float))
        return self.store.serialize_cdr(msg, "dexndm_msgs/msg/HandCommand")

    def event(self, kind, episode, steps, reason):
        self.events.append((kind, episode, steps))
        msg = self.store.types["dexndm_msgs/msg/EpisodeEvent"](
            header=self.H(stamp=self.T(sec=0, nanosec=0), frame_id=""), event=kind, episode=episode, steps=steps,
            source="sine", wrist="palm_up", reason=reason)
        return self.store.serialize_cdr(msg, "dexndm_msgs/msg/EpisodeEvent")

    def state(self, q, stamp):
        msg = self.store.types["sensor_msgs/msg/JointState"](
            header=self.H(stamp=self.T(*divmod(stamp, 10**9)), frame_id=""), name=[], position=np.asarray(q),
            velocity=np.zeros(0), effort=np.zeros(0))
        return self.store.serialize_cdr(msg, "sensor_msgs/msg/JointState")


@pytest.fixture(scope="module")
def store():
    return bag.make_typestore()


class Clock:
    t = 0.0

    def __call__(self):
        return self.t


def drive(run, out, ticks, q0=hand.OPEN_POSE, first_tick=0):
    """A perfect lockstep hand: q_{t+1} = the target answering q_t (stamps from tick first_tick + 1 on)."""
    q = np.array(q0, dtype=float)
    for k in range(ticks):
        if run.done:
            return k
        stamp = (first_tick + k + 1) * 50_000_000
        n = len(out.commands)
        run.on_state(q, stamp, out.state(q, stamp))
        if run.done:  # the state after the last episode (or a fault) gets no answer
            assert len(out.commands) == n
            return k
        assert len(out.commands) == n + 1 and out.commands[-1][1] == stamp  # one answer, to this state
        q = out.commands[-1][0]
    return ticks


def test_resets_then_records_whole_episodes(tmp_path, store):
    out = Outputs(store)
    src = ReplaySource("sine", steps=30, seed=2)
    run = CollectionRun(bag.EpisodeBagWriter(tmp_path / "c", min_free_mb=0, typestore=store), src, 2, out,
                        reset_steps=5, settle_steps=3)
    drive(run, out, 1000)
    assert run.done and not run.failure and run.completed == 2 and run.transitions == 60
    first = src.episode(0)
    reset = [c[0] for c in out.commands[:8]]
    np.testing.assert_allclose(reset[0], 0.8 * hand.OPEN_POSE + 0.2 * first[0])
    np.testing.assert_allclose(reset[4:], np.tile(first[0], (4, 1)))
    np.testing.assert_allclose([c[0] for c in out.commands[8:38]], first)
    assert out.events == [(START, 0, 0), (END, 0, 30), (START, 1, 0), (END, 1, 30)]
    checks = verify.check_collection(tmp_path / "c")
    assert [(c.index, c.states, c.commands, c.ok) for c in checks] == [(0, 31, 30, True), (1, 31, 30, True)]
    assert "episodes=2 transitions=60" in run.summary() and "ok=1" in run.summary()


def test_rerun_on_a_finished_directory_does_nothing_and_a_larger_goal_continues(tmp_path, store):
    src = ReplaySource("square", steps=10)
    out = Outputs(store)
    drive(CollectionRun(bag.EpisodeBagWriter(tmp_path / "c", min_free_mb=0, typestore=store), src, 1, out,
                        reset_steps=2, settle_steps=0), out, 100)
    again = CollectionRun(bag.EpisodeBagWriter(tmp_path / "c", min_free_mb=0, typestore=store), src, 1, Outputs(store))
    assert again.done and again.completed == 1
    more_out = Outputs(store)
    more = CollectionRun(bag.EpisodeBagWriter(tmp_path / "c", min_free_mb=0, typestore=store), src, 3, more_out,
                         reset_steps=2, settle_steps=0)
    drive(more, more_out, 100)
    assert more.completed == 3 and more.new_episodes == 2 and more_out.events[0] == (START, 1, 0)
    assert [c.index for c in verify.check_collection(tmp_path / "c")] == [0, 1, 2]


def test_silent_driver_aborts_the_episode_with_a_reason(tmp_path, store):
    clock, out = Clock(), Outputs(store)
    run = CollectionRun(bag.EpisodeBagWriter(tmp_path / "c", min_free_mb=0, typestore=store),
                        ReplaySource("sine", steps=50), 2, out, reset_steps=2, settle_steps=0, state_timeout=2.0,
                        clock=clock)
    drive(run, out, 20)
    clock.t = 1.0
    run.check_timeout()
    assert not run.done
    clock.t = 3.5
    run.check_timeout()
    assert run.done and "no joint state" in run.failure and out.events[-1][0] == ABORT
    assert bag.episode_files(tmp_path / "c") == [] and "ok=0" in run.summary()


def test_full_disk_stops_cleanly(tmp_path, store):
    out = Outputs(store)
    run = CollectionRun(bag.EpisodeBagWriter(tmp_path / "c", min_free_mb=1e12, typestore=store),
                        ReplaySource("sine", steps=5), 1, out, reset_steps=1, settle_steps=0)
    drive(run, out, 10)
    assert run.done and run.failure.startswith("disk full") and run.completed == 0


def test_stale_or_repeated_states_get_no_second_answer(tmp_path, store):
    out = Outputs(store)
    run = CollectionRun(bag.EpisodeBagWriter(tmp_path / "c", min_free_mb=0, typestore=store),
                        ReplaySource("sine", steps=5), 1, out, reset_steps=1, settle_steps=0)
    q = hand.OPEN_POSE
    run.on_state(q, 100, out.state(q, 100))
    run.on_state(q, 100, out.state(q, 100))
    run.on_state(q, 50, out.state(q, 50))
    assert len(out.commands) == 1 and run.stale_states == 2


def test_a_restarted_driver_stops_the_run(tmp_path, store):
    out = Outputs(store)
    run = CollectionRun(bag.EpisodeBagWriter(tmp_path / "c", min_free_mb=0, typestore=store),
                        ReplaySource("sine", steps=50), 1, out, reset_steps=1, settle_steps=0)
    drive(run, out, 40)  # 2 s of states, inside the episode
    q = hand.OPEN_POSE
    run.on_state(q, 50_000_000, out.state(q, 50_000_000))  # sim time starts again
    assert run.done and "driver restarted" in run.failure and out.events[-1][0] == ABORT


BUS = [("hand_driver: bus", "5 reads failed in a row: [TxRxResult] There is no status packet!")]


def test_a_bus_error_redoes_the_open_episode_and_loses_nothing(tmp_path, store):
    out = Outputs(store)
    src = ReplaySource("sine", steps=30, seed=4)
    run = CollectionRun(bag.EpisodeBagWriter(tmp_path / "c", min_free_mb=0, typestore=store), src, 2, out,
                        reset_steps=2, settle_steps=0)
    run.on_driver_errors(BUS)  # before the first state: a driver starting up, ignored
    drive(run, out, 45)  # episode 0 done (ticks 3-33), episode 1 open since tick 35
    assert run.writer.episode_open and run.index == 1
    run.on_driver_errors(BUS)
    assert not run.done and not run.writer.episode_open and run.redone == 1
    assert out.events[-1] == (ABORT, 1, 11)
    drive(run, out, 100, q0=out.commands[-1][0], first_tick=45)
    assert run.done and not run.failure and run.completed == 2
    assert [e for e in out.events if e[0] == START] == [(START, 0, 0), (START, 1, 0), (START, 1, 0)]
    np.testing.assert_allclose([c[0] for c in out.commands[-30:]], src.episode(1))  # the same episode, whole
    checks = verify.check_collection(tmp_path / "c")
    assert [(c.index, c.states, c.ok) for c in checks] == [(0, 31, True), (1, 31, True)]
    discarded = json.loads((tmp_path / "c" / bag.MANIFEST).read_text())["discarded"]
    assert [d["name"] for d in discarded] == ["episode_000001"] and discarded[0]["reason"].endswith("; redone")
    assert "redone=1" in run.summary() and "ok=1" in run.summary()


def test_bus_errors_between_episodes_restart_the_reset(tmp_path, store):
    out = Outputs(store)
    src = ReplaySource("sine", steps=10, seed=5)
    run = CollectionRun(bag.EpisodeBagWriter(tmp_path / "c", min_free_mb=0, typestore=store), src, 1, out,
                        reset_steps=4, settle_steps=0)
    drive(run, out, 3)  # inside the reset
    run.on_driver_errors(BUS)
    assert run.redone == 0 and not run.done
    q = out.commands[-1][0]
    drive(run, out, 1, q0=q, first_tick=3)
    np.testing.assert_allclose(out.commands[-1][0], 0.75 * q + 0.25 * src.episode(0)[0])  # a fresh ramp from q
    drive(run, out, 50, q0=out.commands[-1][0], first_tick=4)
    assert run.done and not run.failure and run.completed == 1


def test_bus_errors_past_the_retries_stop_the_run(tmp_path, store):
    out = Outputs(store)
    run = CollectionRun(bag.EpisodeBagWriter(tmp_path / "c", min_free_mb=0, typestore=store),
                        ReplaySource("sine", steps=30), 1, out, reset_steps=1, settle_steps=0, bus_retries=2)
    tick = 0
    for _ in range(3):
        tick += drive(run, out, 10, q0=out.commands[-1][0] if out.commands else hand.OPEN_POSE, first_tick=tick)
        run.on_driver_errors(BUS)
    assert run.done and "bus_retries 2 spent" in run.failure and run.redone == 2
    assert [e[0] for e in out.events].count(ABORT) == 3 and bag.episode_files(tmp_path / "c") == []


def test_a_servo_hardware_error_stops_the_run_at_once(tmp_path, store):
    out = Outputs(store)
    run = CollectionRun(bag.EpisodeBagWriter(tmp_path / "c", min_free_mb=0, typestore=store),
                        ReplaySource("sine", steps=30), 1, out, reset_steps=1, settle_steps=0)
    drive(run, out, 10)
    run.on_driver_errors(BUS + [("hand_driver: servo 3 if_dip", "hardware error: overload")])
    assert run.done and run.redone == 0 and "servo 3 if_dip: hardware error: overload" in run.failure
    assert out.events[-1][0] == ABORT
