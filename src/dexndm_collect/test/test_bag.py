"""The per-episode rosbag2 writer: real MCAP files read back with rosbags, crash leftovers, resume, disk full."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Reader

from dexndm_collect import bag


@pytest.fixture(scope="module")
def store():
    return bag.make_typestore()


def state_bytes(store, k):
    JS = store.types["sensor_msgs/msg/JointState"]
    Header, Time = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    msg = JS(header=Header(stamp=Time(sec=k, nanosec=0), frame_id=""), name=[], position=np.full(16, 0.1 * k),
             velocity=np.zeros(16), effort=np.zeros(16))
    return store.serialize_cdr(msg, "sensor_msgs/msg/JointState")


def command_bytes(store, k):
    HC = store.types["dexndm_msgs/msg/HandCommand"]
    Header, Time = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    msg = HC(header=Header(stamp=Time(sec=k, nanosec=1), frame_id=""), state_stamp=Time(sec=k, nanosec=0),
             position=np.full(16, 0.2 * k))
    return store.serialize_cdr(msg, "dexndm_msgs/msg/HandCommand")


def write_episode(writer, store, index, steps=5):
    writer.begin_episode(index)
    for k in range(steps):
        writer.write(bag.STATE_TOPIC, 10**9 * k, state_bytes(store, k))
        writer.write(bag.COMMAND_TOPIC, 10**9 * k + 1, command_bytes(store, k))
    writer.write(bag.STATE_TOPIC, 10**9 * steps, state_bytes(store, steps))
    return writer.end_episode({"source": "test"})


def test_episodes_become_one_bag_readable_by_rosbags(tmp_path, store):
    writer = bag.EpisodeBagWriter(tmp_path / "out", min_free_mb=0, typestore=store)
    assert writer.open().next_episode == 0
    for i in range(3):
        entry = write_episode(writer, store, i)
        assert entry["transitions"] == 5 and entry["topics"][bag.STATE_TOPIC] == 6
    files = [p.name for p in bag.episode_files(tmp_path / "out")]
    assert files == ["episode_000000.mcap", "episode_000001.mcap", "episode_000002.mcap"]
    with AnyReader([tmp_path / "out"]) as reader:
        counts = {}
        commands = []
        for conn, _, raw in reader.messages():
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
            if conn.topic == bag.COMMAND_TOPIC:
                commands.append(reader.deserialize(raw, conn.msgtype))
    assert counts == {bag.STATE_TOPIC: 18, bag.COMMAND_TOPIC: 15}
    assert [c.state_stamp.sec for c in commands] == [0, 1, 2, 3, 4] * 3
    np.testing.assert_allclose(commands[3].position, 0.6)
    with Reader(tmp_path / "out") as reader:
        assert reader.message_count == 33
        assert {c.topic: c.msgcount for c in reader.connections}[bag.COMMAND_TOPIC] == 15


def test_resume_discards_partial_and_never_repeats_an_index(tmp_path, store):
    out = tmp_path / "out"
    writer = bag.EpisodeBagWriter(out, min_free_mb=0, typestore=store)
    writer.open()
    write_episode(writer, store, 0)
    writer.begin_episode(1)
    writer.write(bag.STATE_TOPIC, 1, state_bytes(store, 0))  # crash here: no end_episode
    report = bag.EpisodeBagWriter(out, min_free_mb=0, typestore=store).open()
    assert report.completed == [0] and report.next_episode == 1 and report.discarded == ["episode_000001"]
    manifest = json.loads((out / bag.MANIFEST).read_text())
    assert manifest["discarded"][0]["name"] == "episode_000001"
    assert not (out / bag.PARTIAL).exists()
    writer = bag.EpisodeBagWriter(out, min_free_mb=0, typestore=store)
    writer.open()
    with pytest.raises(bag.BagError, match="never written twice"):
        writer.begin_episode(0)


def test_a_committed_file_missing_from_the_manifest_is_recovered(tmp_path, store):
    out = tmp_path / "out"
    writer = bag.EpisodeBagWriter(out, min_free_mb=0, typestore=store)
    writer.open()
    write_episode(writer, store, 0)
    write_episode(writer, store, 1)
    manifest = json.loads((out / bag.MANIFEST).read_text())
    manifest["episodes"] = manifest["episodes"][:1]  # as if killed between the rename and the manifest update
    (out / bag.MANIFEST).write_text(json.dumps(manifest))
    report = bag.EpisodeBagWriter(out, min_free_mb=0, typestore=store).open()
    assert report.completed == [0, 1] and report.recovered == [1] and report.next_episode == 2
    with Reader(out) as reader:
        assert reader.message_count == 22


def test_sigkill_mid_episode_leaves_completed_episodes_readable(tmp_path):
    """A real process killed with SIGKILL while an episode is open."""
    out = tmp_path / "out"
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_bag import write_episode, state_bytes
from dexndm_collect import bag
store = bag.make_typestore()
w = bag.EpisodeBagWriter({str(out)!r}, min_free_mb=0, typestore=store)
w.open()
write_episode(w, store, 0)
write_episode(w, store, 1)
w.begin_episode(2)
for k in range(100):
    w.write(bag.STATE_TOPIC, k, state_bytes(store, k))
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    with Reader(out) as reader:
        assert reader.message_count == 22
    report = bag.EpisodeBagWriter(out, min_free_mb=0).open()
    assert report.completed == [0, 1] and report.next_episode == 2 and report.discarded == ["episode_000002"]


KILL_AT = {  # audit events (PEP 578) of the two steps of a discard: the manifest's rename, the partial's removal
    "manifest_rename": "event == 'os.rename' and str(args[1]).endswith('collection.json')",
    "partial_removal": "event == 'shutil.rmtree' and '.partial' in str(args[0])",
}


@pytest.mark.parametrize("step", sorted(KILL_AT))
def test_a_kill_while_discarding_never_loses_the_record(tmp_path, step):
    """A real process SIGKILLed at one step of aborting an episode (as at shutdown after SIGTERM): the resume
    still reports the discarded episode, exactly once, and with the reason when it was written."""
    out = tmp_path / "out"
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_bag import write_episode, state_bytes
from dexndm_collect import bag
store = bag.make_typestore()
w = bag.EpisodeBagWriter({str(out)!r}, min_free_mb=0, typestore=store)
w.open()
write_episode(w, store, 0)
w.begin_episode(1)
w.write(bag.STATE_TOPIC, 1, state_bytes(store, 1))

def kill(event, args):
    if {KILL_AT[step]}:
        os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(kill)
w.abort_episode("interrupted (SIGTERM)")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    report = bag.EpisodeBagWriter(out, min_free_mb=0).open()
    assert report.completed == [0] and report.next_episode == 1 and report.discarded == ["episode_000001"]
    discarded = json.loads((out / bag.MANIFEST).read_text())["discarded"]
    assert [d["name"] for d in discarded] == ["episode_000001"]
    if step == "partial_removal":  # the manifest was written before the removal began
        assert discarded[0]["reason"] == "interrupted (SIGTERM)"
    assert not (out / bag.PARTIAL).exists()
    bag.EpisodeBagWriter(out, min_free_mb=0).open()  # a second resume adds nothing
    assert len(json.loads((out / bag.MANIFEST).read_text())["discarded"]) == 1


def test_disk_full_stops_before_an_episode_with_the_reason(tmp_path, store):
    writer = bag.EpisodeBagWriter(tmp_path / "out", min_free_mb=1e12, typestore=store)
    writer.open()
    with pytest.raises(bag.DiskFullError, match="disk full"):
        writer.begin_episode(0)
    assert not writer.episode_open


def test_abort_drops_the_episode_and_records_why(tmp_path, store):
    writer = bag.EpisodeBagWriter(tmp_path / "out", min_free_mb=0, typestore=store)
    writer.open()
    writer.begin_episode(0)
    writer.write(bag.STATE_TOPIC, 1, state_bytes(store, 0))
    writer.abort_episode("driver fault")
    assert bag.episode_files(tmp_path / "out") == []
    assert json.loads((tmp_path / "out" / bag.MANIFEST).read_text())["discarded"][0]["reason"] == "driver fault"
    assert writer.open().next_episode == 0
