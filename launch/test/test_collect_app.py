"""`dexndm collect` end to end: a SIGKILL of the collector mid-episode is recovered by rerunning the same
command, and bad arguments are refused.

The runs whose bags are also converted (`dexndm-train convert-bags`) or viewed live with training
(training/tests/test_collected_bags.py): launch tests may not import dexndm_training. collect_checks
(beside this file) runs the app and checks a bag for both.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collect_checks import LOCKSTEP_SLACK, check_bag, collect, summary  # noqa: E402

#: Episode length of the SIGKILL test: long enough to land mid-episode (the kill comes 0.5 s into episode 1,
#: so the collector would have to run faster than 400 steps/s to finish it first, as with 400 steps and 1 s).
STEPS = 200


def _child(pid, name):
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and name.encode() in cmdline:
                return int(entry.name)
    return None


def test_sigkill_of_the_collector_mid_episode_then_rerun(tmp_path):
    out = tmp_path / "bag"
    args = ["dexndm", "collect", f"output:={out}", "progress:=false", "episodes:=3", f"steps:={STEPS}",
            "realtime_factor:=0", LOCKSTEP_SLACK]
    graph = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / ".partial" / "episode_000001").exists():
        time.sleep(0.02)
    time.sleep(0.5)  # some 40 steps into episode 1 on a loaded 2-core machine
    collector = _child(graph.pid, "chaos_box")
    assert collector is not None and [p.name for p in (out / ".partial").iterdir()] == ["episode_000001"]
    os.kill(collector, signal.SIGKILL)
    graph.wait(timeout=30)
    assert graph.returncode != 0  # the required node died: the graph stopped
    proc = collect(out, "episodes:=3", f"steps:={STEPS}", "realtime_factor:=0", LOCKSTEP_SLACK)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "discarded partial episode(s)" in proc.stderr
    last = summary(proc.stdout)
    assert (last["episodes"], last["new_episodes"], last["transitions"]) == ("3", "2", str(3 * STEPS))
    check_bag(out, 3, STEPS)
    manifest = json.loads((out / "collection.json").read_text())
    assert [e["index"] for e in manifest["episodes"]] == [0, 1, 2] and len(manifest["discarded"]) == 1


def test_bad_arguments_fail_fast_with_a_clear_message(tmp_path, refused):
    assert "backend must be sim, emulated or dynamixel" in refused("collect", f"output:={tmp_path / 'bag'}", "backend:=usb")
    assert "episodes must be an integer >= 1" in refused("collect", f"output:={tmp_path / 'bag'}", "episodes:=0")
