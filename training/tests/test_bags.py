"""Bags -> dataset: pairing by state_stamp, the next state, broken transitions dropped and reported."""
import numpy as np
import pytest

from dexndm_collect import bag
from dexndm_training import cli
from dexndm_training.bags import convert_bags
from dexndm_training.dataset import Dataset

PERIOD = 50_000_000


@pytest.fixture(scope="module")
def store():
    return bag.make_typestore()


def msgs(store):
    T, H = store.types["builtin_interfaces/msg/Time"], store.types["std_msgs/msg/Header"]

    def state(stamp, q):
        m = store.types["sensor_msgs/msg/JointState"](header=H(stamp=T(*divmod(stamp, 10**9)), frame_id=""), name=[],
                                                       position=np.asarray(q, float), velocity=np.zeros(0),
                                                       effort=np.zeros(0))
        return store.serialize_cdr(m, "sensor_msgs/msg/JointState")

    def command(stamp, a):
        m = store.types["dexndm_msgs/msg/HandCommand"](header=H(stamp=T(0, 0), frame_id=""),
                                                        state_stamp=T(*divmod(stamp, 10**9)), position=np.asarray(a, float))
        return store.serialize_cdr(m, "dexndm_msgs/msg/HandCommand")

    def event(kind, episode, steps):
        m = store.types["dexndm_msgs/msg/EpisodeEvent"](header=H(stamp=T(0, 0), frame_id=""), event=kind,
                                                         episode=episode, steps=steps, source="sine", wrist="palm_down",
                                                         reason="servo fault" if kind == 2 else "")
        return store.serialize_cdr(m, "dexndm_msgs/msg/EpisodeEvent")

    return state, command, event


def write(writer, store, index, steps, skip_state=None, bogus_command=None, end=1):
    """An episode where q_t = t (all joints, scaled) and a_t = q_t + 0.5."""
    state, command, event = msgs(store)
    writer.begin_episode(index)
    t0 = (index + 1) * 10**9 * 100
    log = 0
    writer.write(bag.EPISODE_TOPIC, log, event(0, index, 0))
    for k in range(steps + 1):
        stamp = t0 + k * PERIOD
        log += 1
        if k != skip_state:
            writer.write(bag.STATE_TOPIC, log, state(stamp, np.full(16, 0.01 * k)))
        if k < steps:
            answer = stamp + 7 if k == bogus_command else stamp
            writer.write(bag.COMMAND_TOPIC, log, command(answer, np.full(16, 0.01 * k + 0.5)))
    if end is not None:
        writer.write(bag.EPISODE_TOPIC, log + 1, event(end, index, steps))
    writer.end_episode()


def test_converted_dataset_pairs_commands_with_their_states(tmp_path, store):
    writer = bag.EpisodeBagWriter(tmp_path / "bag", min_free_mb=0, typestore=store)
    writer.open()
    write(writer, store, 0, 20)
    write(writer, store, 1, 20)
    assert cli.main(["convert-bags", str(tmp_path / "bag"), str(tmp_path / "ds")]) == 0
    ds = Dataset(tmp_path / "ds")
    assert len(ds) == 40 and [e["length"] for e in ds.episodes] == [20, 20]
    np.testing.assert_allclose(ds["q"][:20, 3], 0.01 * np.arange(20), atol=1e-6)
    np.testing.assert_allclose(ds["target"][:20, 3], 0.01 * np.arange(20) + 0.5, atol=1e-6)
    np.testing.assert_allclose(ds["next_q"][:20, 3], 0.01 * np.arange(1, 21), atol=1e-6)
    np.testing.assert_allclose(ds["wrist"][0], [0, 0, 0, 1])  # from the episode's wrist label
    assert all(e["success"] and e["source"] == "chaos_box:sine" for e in ds.episodes)


def test_broken_transitions_are_dropped_reported_and_split(tmp_path, store, capsys):
    writer = bag.EpisodeBagWriter(tmp_path / "bag", min_free_mb=0, typestore=store)
    writer.open()
    write(writer, store, 0, 20, skip_state=10)  # state 10 lost: commands 9 and 10 break
    write(writer, store, 1, 20, bogus_command=5)  # command 5 answers no state
    write(writer, store, 2, 20, end=2)  # aborted
    write(writer, store, 3, 20, end=None)  # never ended
    report = convert_bags([tmp_path / "bag"], tmp_path / "ds")
    assert report.episodes == 2 and report.transitions == 40 - 3
    assert report.dropped == {"skipped tick before the next state": 1, "command answers no recorded state": 2}
    assert report.skipped_episodes == {"ABORT: servo fault": 1, "no END event (interrupted)": 1}
    ds = Dataset(tmp_path / "ds")
    assert [e["length"] for e in ds.episodes] == [9, 9, 5, 14] and not any(e["success"] for e in ds.episodes)
    second = ds.episode_slice(1)
    np.testing.assert_allclose(ds["q"][second][0, 0], 0.11, atol=1e-6)  # resumes after the gap, contiguous
    np.testing.assert_allclose(ds["next_q"][second][:-1], ds["q"][second][1:])


def test_cli_reports_missing_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a bag directory"):
        cli.main(["convert-bags", str(tmp_path / "nothing"), str(tmp_path / "ds")])


def test_commands_the_driver_refused_are_dropped_by_its_diagnostics(tmp_path, store):
    """Counters rising between two diagnostics reports drop the commands answering states in between."""
    state, command, event = msgs(store)
    T, H = store.types["builtin_interfaces/msg/Time"], store.types["std_msgs/msg/Header"]
    Status, KV = store.types["diagnostic_msgs/msg/DiagnosticStatus"], store.types["diagnostic_msgs/msg/KeyValue"]

    def diagnostics(stamp, refused):
        values = [KV(key="refused_total", value=str(refused)), KV(key="watchdog_timeouts", value=str(refused))]
        msg = store.types["diagnostic_msgs/msg/DiagnosticArray"](
            header=H(stamp=T(*divmod(stamp, 10**9)), frame_id=""),
            status=[Status(level=b"\x01"[0], name="hand_driver: commands", message="", hardware_id="leap_hand",
                           values=values)])
        return store.serialize_cdr(msg, "diagnostic_msgs/msg/DiagnosticArray")

    writer = bag.EpisodeBagWriter(tmp_path / "bag", min_free_mb=0, typestore=store)
    writer.open()
    writer.begin_episode(0)
    t0 = 10**11
    writer.write(bag.EPISODE_TOPIC, 0, event(0, 0, 0))
    writer.write("/diagnostics", 0, diagnostics(t0 - PERIOD, 3))  # baseline from before the episode
    for k in range(21):
        stamp = t0 + k * PERIOD
        writer.write(bag.STATE_TOPIC, k + 1, state(stamp, np.full(16, 0.01 * k)))
        if k in (5, 10, 15):  # a report after states 5, 10 and 15; the count rises between 10 and 15
            writer.write("/diagnostics", k + 1, diagnostics(stamp, 3 if k < 15 else 4))
        if k < 20:
            writer.write(bag.COMMAND_TOPIC, k + 1, command(stamp, np.full(16, 0.01 * k + 0.5)))
    writer.write(bag.EPISODE_TOPIC, 30, event(1, 0, 20))
    writer.end_episode()
    report = convert_bags([tmp_path / "bag"], tmp_path / "ds")
    assert report.dropped == {"driver refused or timed out a command near here (diagnostics)": 5}
    ds = Dataset(tmp_path / "ds")
    assert [e["length"] for e in ds.episodes] == [10, 5]
    np.testing.assert_allclose(ds["q"][10, 0], 0.15, atol=1e-6)  # states 10..14 dropped, 15.. kept
