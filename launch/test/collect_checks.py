"""Test support for `dexndm collect` runs (not shipped): run the app, read its last line, check its bag.

Used by launch/test/test_collect_app.py and by training/tests/test_collected_bags.py (the tests that
also convert or view a collected bag, which needs dexndm_training: launch tests may not import it).
A test adds this folder to sys.path and imports it.
"""
import subprocess

from rosbags.highlevel import AnyReader

from dexndm_collect import verify

#: In lockstep the sim driver waits this long for each answer; a shared 2-core CI machine can stall the
#: collector past the default 0.5 s, and a refused answer costs transitions (see docs/COLLECT.md).
LOCKSTEP_SLACK = "command_timeout:=2.0"


def collect(out, *args, timeout=240, **popen):
    cmd = ["dexndm", "collect", f"output:={out}", "progress:=false", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **popen)


def summary(stdout):
    return dict(kv.split("=", 1) for kv in stdout.strip().splitlines()[-1].split())


def check_bag(out, episodes, steps, lockstep=True):
    """Message counts, episode boundaries and lockstep pairing, read back with rosbags.

    In lockstep (sim backend) no tick can be lost; on the emulated bus at 20 Hz real time the driver may
    miss a read under load (no state that tick), which the bag must show as a stamp gap, nothing else.
    """
    counts, events = {}, []
    with AnyReader([out]) as reader:  # the whole bag, through its metadata.yaml
        for conn, _, raw in reader.messages():
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
            if conn.topic == "/dexndm/collect/episode":
                msg = reader.deserialize(raw, conn.msgtype)
                events.append((msg.event, msg.episode, msg.steps))
    for file in sorted(out.glob("episode_*.mcap")):  # stamps are unique per episode (sim time restarts)
        state_stamps, answers = set(), []
        with AnyReader([file]) as reader:
            for conn, _, raw in reader.messages():
                if conn.topic == "/leap_hand/joint_states":
                    stamp = reader.deserialize(raw, conn.msgtype).header.stamp
                    state_stamps.add((stamp.sec, stamp.nanosec))
                elif conn.topic == "/leap_hand/command":
                    stamp = reader.deserialize(raw, conn.msgtype).state_stamp
                    answers.append((stamp.sec, stamp.nanosec))
        assert len(answers) == steps and len(set(answers)) == steps and set(answers) <= state_stamps
    assert counts["/leap_hand/joint_states"] == episodes * (steps + 1)
    assert counts["/leap_hand/command"] == episodes * steps
    assert counts["/dexndm/wrist_orientation"] >= episodes and counts["/diagnostics"] >= 1
    assert events == [e for k in range(episodes) for e in ((0, k, 0), (1, k, steps))]
    checks = verify.check_collection(out)
    assert all(c.ok for c in checks)
    if lockstep:
        assert sum(c.dropped_ticks for c in checks) == 0
    return checks
