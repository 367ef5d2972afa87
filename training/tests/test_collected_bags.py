"""Bags collected by the real `dexndm collect` graph (sim Chaos Box, and the emulated bus), converted with
`dexndm-train convert-bags` and viewed with `dexndm-train view-bag`.

These live with training because they run its commands, in this process (cli.main, the console script's
code, without another interpreter and torch import per call); launch tests may not import dexndm_training.
The graph runs and the bag checks come from launch/test/collect_checks.py. One sim collection serves
the conversion and the viewer tests.
"""
import json
import math
import sys
from pathlib import Path

import pytest
from rosbags.highlevel import AnyReader

from dexndm_description import hand
from dexndm_training import cli
from dexndm_viz.readback import summarize, values

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "launch" / "test"))
from collect_checks import LOCKSTEP_SLACK, check_bag, collect, summary  # noqa: E402

STEPS = 100  # steps:= of each run: the app's pipeline, a quarter of its default episode


@pytest.fixture(scope="module")
def sim_collection(tmp_path_factory):
    """Two sim Chaos Box episodes in lockstep, as fast as the machine goes: (bag directory, the app's stdout)."""
    bag = tmp_path_factory.mktemp("sim") / "bag"
    proc = collect(bag, "episodes:=2", f"steps:={STEPS}", "backend:=sim", "scene:=chaos_box", "realtime_factor:=0",
                   LOCKSTEP_SLACK)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return bag, proc.stdout


def convert(capsys, bag, dataset):
    """`dexndm-train convert-bags`; returns its summary and {reason: transitions dropped}."""
    capsys.readouterr()
    assert cli.main(["convert-bags", str(bag), str(dataset)]) == 0
    out = capsys.readouterr().out
    reasons = {}
    for line in out.splitlines():
        if line.startswith("dropped "):
            count, _, reason = line[len("dropped "):].partition(" transition(s): ")
            reasons[reason] = int(count)
    return summary(out), reasons


def test_sim_chaos_box_collects_converts_and_reports(sim_collection, tmp_path, capsys):
    bag, stdout = sim_collection
    last = summary(stdout)
    assert (last["episodes"], last["transitions"], last["bag"]) == ("2", str(2 * STEPS), str(bag))
    check_bag(bag, 2, STEPS)
    converted, reasons = convert(capsys, bag, tmp_path / "ds")
    assert converted["transitions"] == str(2 * STEPS) and converted["dropped"] == "0", reasons
    index = json.loads((tmp_path / "ds" / "index.json").read_text())
    assert index["num_transitions"] == 2 * STEPS and [e["length"] for e in index["episodes"]] == [STEPS, STEPS]


def test_emulated_bus_collects_through_the_real_sdk(tmp_path, capsys):
    proc = collect(tmp_path / "bag", "episodes:=2", f"steps:={STEPS}", "backend:=emulated", "scene:=chaos_box")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary(proc.stdout)["transitions"] == str(2 * STEPS)
    checks = check_bag(tmp_path / "bag", 2, STEPS, lockstep=False)
    converted, reasons = convert(capsys, tmp_path / "bag", tmp_path / "ds")
    dropped = int(converted["dropped"])
    assert int(converted["transitions"]) + dropped == 2 * STEPS
    # Real time on a shared machine: the driver may lose a read (a stamp gap) or refuse a late answer
    # (its diagnostics counters rise); those transitions, and only those, are dropped.
    assert set(reasons) <= {"skipped tick before the next state",
                            "driver refused or timed out a command near here (diagnostics)"}
    lost = sum(c.dropped_ticks for c in checks)
    assert dropped > 0 if lost else "skipped tick before the next state" not in reasons


def bag_states_per_episode(bag):
    counts, current = {}, None
    with AnyReader([bag]) as reader:
        for conn, _, raw in reader.messages():
            if conn.topic == "/dexndm/collect/episode":
                msg = reader.deserialize(raw, conn.msgtype)
                if msg.event == 0:
                    current = msg.episode
            elif conn.topic == "/leap_hand/joint_states" and current is not None:
                counts[current] = counts.get(current, 0) + 1
    return counts


def test_view_bag_gives_each_collected_episode_a_timeline_with_one_entry_per_tick(sim_collection, tmp_path, capsys):
    bag, _ = sim_collection
    states = bag_states_per_episode(bag)
    assert states == {0: STEPS + 1, 1: STEPS + 1}

    capsys.readouterr()
    rrd = tmp_path / "bag.rrd"
    assert cli.main(["view-bag", str(bag), "--out", str(rrd)]) == 0
    assert summary(capsys.readouterr().out) == {"episodes": "2", "ticks": str(2 * (STEPS + 1)),
                                                "commands": str(2 * STEPS), "recording": str(rrd)}
    for episode, count in states.items():
        timeline = f"episode_{episode:06d}"
        found = summarize(rrd, timeline)
        assert sorted(found.index) == list(range(count)), timeline  # one entry per tick, nothing else
        for name in hand.JOINT_NAMES:
            assert found.count(f"/joints/{name}", "Scalars:scalars") == count
        assert found.count("/world/palm/links/th_ds", "Transform3D:translation") == count
        _, rows = values(rrd, timeline, "/joints/if_mcp", "Scalars:scalars")
        assert sum(not math.isnan(r[1]) for r in rows) == STEPS  # the commanded target; the last state has none
        _, events = values(rrd, timeline, "/events", "TextLog:text")
        assert [e[0].split()[2] for e in events] == ["START", "END"]
    whole = summarize(rrd, "bag_tick")
    assert sorted(whole.index) == list(range(sum(states.values())))
    assert "episode_000002" not in whole.timelines

    assert cli.main(["view-bag", str(bag), "--episodes", "1", "--out", str(tmp_path / "one.rrd")]) == 0
    assert summary(capsys.readouterr().out)["ticks"] == str(STEPS + 1)
    assert "episode_000000" not in summarize(tmp_path / "one.rrd", "bag_tick").timelines
    assert cli.main(["view-bag", str(tmp_path / "nothing")]) == 2
    assert "neither a bag directory nor an .mcap file" in capsys.readouterr().err


def test_view_bag_writes_beside_the_bag_by_default(sim_collection, capsys):
    bag, _ = sim_collection
    capsys.readouterr()
    assert cli.main(["view-bag", str(bag), "--episodes", "0"]) == 0
    assert summary(capsys.readouterr().out)["recording"] == str(bag.parent / "bag.rrd")
    (bag.parent / "bag.rrd").unlink()
