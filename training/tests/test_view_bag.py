"""`dexndm-train view-bag`: a bag collected by the real `dexndm collect` graph, as a rerun recording read
back with rerun's own dataframe API (dexndm_viz.readback). The command runs in this process (cli.main):
it is the same code as the console script, without another interpreter and torch import per call."""
import math
import subprocess

from rosbags.highlevel import AnyReader

from dexndm_description import hand
from dexndm_training import cli
from dexndm_viz.readback import summarize, values


def fields(stdout):
    return dict(kv.split("=", 1) for kv in stdout.strip().splitlines()[-1].split())


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


def test_view_bag_gives_each_collected_episode_a_timeline_with_one_entry_per_tick(tmp_path, capsys):
    bag, steps = tmp_path / "bag", 100
    out = subprocess.run(["dexndm", "collect", f"output:={bag}", "progress:=false", "episodes:=2", f"steps:={steps}",
                          "realtime_factor:=0", "command_timeout:=2.0"], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    states = bag_states_per_episode(bag)
    assert states == {0: steps + 1, 1: steps + 1}

    assert cli.main(["view-bag", str(bag)]) == 0
    rrd = tmp_path / "bag.rrd"  # beside the bag
    assert fields(capsys.readouterr().out) == {"episodes": "2", "ticks": str(2 * (steps + 1)),
                                               "commands": str(2 * steps), "recording": str(rrd)}
    for episode, count in states.items():
        timeline = f"episode_{episode:06d}"
        summary = summarize(rrd, timeline)
        assert sorted(summary.index) == list(range(count)), timeline  # one entry per tick, nothing else
        for name in hand.JOINT_NAMES:
            assert summary.count(f"/joints/{name}", "Scalars:scalars") == count
        assert summary.count("/world/palm/links/th_ds", "Transform3D:translation") == count
        _, rows = values(rrd, timeline, "/joints/if_mcp", "Scalars:scalars")
        assert sum(not math.isnan(r[1]) for r in rows) == steps  # the commanded target; the last state has none
        _, events = values(rrd, timeline, "/events", "TextLog:text")
        assert [e[0].split()[2] for e in events] == ["START", "END"]
    whole = summarize(rrd, "bag_tick")
    assert sorted(whole.index) == list(range(sum(states.values())))
    assert "episode_000002" not in whole.timelines

    assert cli.main(["view-bag", str(bag), "--episodes", "1", "--out", str(tmp_path / "one.rrd")]) == 0
    assert fields(capsys.readouterr().out)["ticks"] == str(steps + 1)
    assert "episode_000000" not in summarize(tmp_path / "one.rrd", "bag_tick").timelines
    assert cli.main(["view-bag", str(tmp_path / "nothing")]) == 2
    assert "neither a bag directory nor an .mcap file" in capsys.readouterr().err
