"""`viz:=` on the apps: real graphs over DDS, recordings read back with rerun's own dataframe API
(dexndm_viz.readback). `dexndm-train view-bag` is tested with training (training/tests/test_view_bag.py)."""
import math
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

from dexndm import graph
from dexndm.runner import graph_environment, node_command
from dexndm_description import hand, interfaces
from dexndm_viz.hand_model import HandGeometry
from dexndm_viz.readback import summarize, values

PERIOD_S = hand.CONTROL_DT


def run(*cmd, timeout=240, env=None):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, env=env)


def fields(stdout):
    return dict(kv.split("=", 1) for kv in stdout.strip().splitlines()[-1].split())


def test_viz_adds_the_viewer_node_only_when_asked():
    rotate = graph.load_app("rotate")
    plain = rotate.nodes(graph.resolve_arguments(rotate, {}))
    assert "rerun_viewer" not in {s.executable for s in plain}  # viz:=none by default: nothing extra
    specs = rotate.nodes(graph.resolve_arguments(rotate, {"viz": "rerun", "plot": "/tmp/x/run.png"}))
    viewer = {s.executable: s for s in specs}["rerun_viewer"]
    assert not viewer.required and viewer.parameters["recording"] == "/tmp/x/run.rrd"
    assert viewer.parameters["mode"] == "rerun" and viewer.parameters["object"] == "normal_cylinder"
    # The sim starts once the monitor and the viewer have matched what they record.
    driver = {s.executable: s for s in specs}["hand_driver"]
    assert driver.parameters["start_gate"] == f"{interfaces.MONITOR_READY},{interfaces.VIEWER_READY}"
    assert viewer.parameters["match"].split(",") == [interfaces.JOINT_STATES, interfaces.HAND_COMMAND,
                                                     interfaces.POLICY_STEP, interfaces.OBJECT_POSE]
    hw = rotate.nodes(graph.resolve_arguments(rotate, {"viz": "web", "hardware": "dynamixel", "viz_port": "0"}))
    viewer = {s.executable: s for s in hw}["rerun_viewer"]
    assert viewer.parameters["object"] == "none" and viewer.parameters["web_port"] == 0  # the hardware graph too
    assert viewer.parameters["match"].split(",")[-1] == interfaces.POLICY_STEP  # no object pose on hardware
    assert "start_gate" not in {s.executable: s for s in hw}["hand_driver"].parameters  # a wall-clock loop
    collect = graph.load_app("collect")
    specs = {s.executable: s for s in collect.nodes(graph.resolve_arguments(collect, {"viz": "rerun",
                                                                                       "output": "data/box"}))}
    assert specs["rerun_viewer"].parameters["recording"] == "data/box.rrd"
    assert specs["rerun_viewer"].parameters["match"].split(",") == [interfaces.JOINT_STATES, interfaces.HAND_COMMAND,
                                                                    interfaces.EPISODE]
    assert specs["hand_driver"].parameters["start_gate"] == interfaces.VIEWER_READY
    plain = {s.executable: s for s in collect.nodes(graph.resolve_arguments(collect, {}))}
    assert "start_gate" not in plain["hand_driver"].parameters


@pytest.mark.parametrize("args, message", [
    (["viz:=movie"], "argument viz must be one of none, rerun, web, window"),
    (["viz:=web", "viz_port:=99999"], "viz_port must be an integer 0..65535"),
    (["viz:=window"], "the native viewer needs a display and neither DISPLAY nor WAYLAND_DISPLAY is set"),
])
def test_viz_refuses_what_cannot_run_with_a_clear_message(refused, monkeypatch, args, message):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert message in refused("rotate", *args)


def test_rotate_with_viz_rerun_records_the_hand_the_object_and_every_joint(tmp_path):
    out = run("dexndm", "rotate", "axis:=z", "hardware:=sim", "realtime_factor:=1", "duration:=5", "viz:=rerun",
              f"plot:={tmp_path / 'rotate.png'}")
    assert out.returncode == 0, out.stderr[-3000:]
    monitor = fields(out.stdout)
    rrd = tmp_path / "rotate.rrd"  # beside the plot
    assert rrd.is_file() and (tmp_path / "rotate.png").is_file()
    logged = re.search(r"rerun_viewer: logged (\d+) states \((\d+) received\)", out.stderr)
    assert logged, out.stderr[-3000:]

    summary = summarize(rrd, "driver_time")
    stamps = np.array([t.total_seconds() for t in summary.index])
    n = len(stamps)
    # Every state the driver published while the viewer listened, none lost: a gapless 50 ms grid of sim time,
    # as many as the viewer received, covering the monitor's whole run.
    assert n == int(logged.group(1)) == int(logged.group(2)) > 0
    assert np.allclose(np.diff(stamps), PERIOD_S)
    assert stamps[-1] - stamps[0] >= float(monitor["run_s"]) - 1e-6
    for name in hand.JOINT_NAMES:
        assert summary.count(f"/joints/{name}", "Scalars:scalars") == n, name
    geometry = HandGeometry()
    for link in geometry.links[1:]:
        assert summary.count(f"/world/palm/links/{link}", "Transform3D:quaternion") == n, link
    assert all(f"/world/palm/links/{link}/{g.name}" in summary.entities() for link in geometry.links
               for g in geometry.geoms[link])
    # The sim publishes a pose with every state. Each subscription matches the driver on its own and the
    # graph stops at any moment, so poses may be missing on the first and last states, never in between.
    posed, _ = values(rrd, "driver_time", "/world/object", "Transform3D:translation")
    posed = np.array([t.total_seconds() for t in posed])
    assert len(posed) >= float(monitor["run_s"]) / PERIOD_S and np.allclose(np.diff(posed), PERIOD_S)
    assert set(np.round(posed, 3)) <= set(np.round(stamps, 3))
    assert summary.count("/rotation/about_axis", "Scalars:scalars") == len(posed)
    assert summary.count("/world/palm/axis", "Arrows3D:vectors") >= 1

    _, rows = values(rrd, "driver_time", "/joints/th_cmc", "Scalars:scalars")
    executed = [r for r in rows if not math.isnan(r[1])]
    residual = [r for r in rows if not math.isnan(r[3])]
    assert len(executed) >= int(monitor["commands"]) and len(residual) >= int(monitor["commands"])
    assert all(hand.LOWER[12] - 0.05 <= r[0] <= hand.UPPER[12] + 0.05 for r in rows)  # measured positions, rad
    _, timing = values(rrd, "driver_time", "/policy/timing", "Scalars:scalars")
    assert len(timing) >= int(monitor["commands"]) and 0 < np.nanmedian([t[1] for t in timing]) < 50  # inference ms
    assert 0 < np.nanmedian([t[0] for t in timing]) < 1000  # state->command, ms (DDS timestamps)


class NodeProcess:
    """One node of an app's graph as its own process (session), its output in a log file."""

    def __init__(self, spec, work):
        self.log = work / f"{spec.name}.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(node_command(spec, work), env=graph_environment(), stdout=log,
                                         stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def stop(self, timeout_s=30.0) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.log.read_text(errors="replace")


def test_a_viewer_that_starts_late_still_records_the_run_from_its_first_state(tmp_path):
    """The sim driver waits for the viewer's ready signal as for the monitor's. The viewer is started only once
    the monitor has signalled ready: gated on the monitor alone, the run is under way by then (the viewer
    takes seconds to start); gated on both, the viewer records every state from the first (sim time 0)."""
    import rclpy
    from rclpy.node import Node
    from std_msgs.msg import Empty

    rotate = graph.load_app("rotate")
    rrd = tmp_path / "late.rrd"
    specs = rotate.nodes(graph.resolve_arguments(rotate, {
        "axis": "z", "realtime_factor": "1", "duration": "2", "plot": "none", "viz": "rerun",
        "viz_recording": str(rrd)}))
    viewer_spec = next(s for s in specs if s.executable == "rerun_viewer")
    procs = {}
    rclpy.init()
    node = Node("late_viewer_test")
    ready = []
    node.create_subscription(Empty, interfaces.MONITOR_READY, ready.append, interfaces.LATCHED.profile())
    try:
        procs.update((s.name, NodeProcess(s, tmp_path)) for s in specs if s is not viewer_spec)
        monitor = procs["rotation_monitor"].proc
        deadline = time.monotonic() + 180
        while not ready and monitor.poll() is None and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        assert ready, "the rotation monitor never signalled ready"
        procs["rerun_viewer"] = NodeProcess(viewer_spec, tmp_path)  # only now
        assert monitor.wait(timeout=240) == 0, procs["rotation_monitor"].log.read_text()[-3000:]
        while time.monotonic() < deadline and viewer_spec.name not in {
                info.node_name for info in node.get_subscriptions_info_by_topic(interfaces.JOINT_STATES)}:
            rclpy.spin_once(node, timeout_sec=0.05)  # the viewer is up (ungated, the run may be over by now)
        for name in ("hand_driver", "rotation_policy"):  # the graph ends as with the runner: no new states
            procs[name].stop()
        viewer_log = procs.pop("rerun_viewer").stop()  # then the viewer writes what it has queued
    finally:
        for proc in procs.values():
            proc.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    result = fields(next(line for line in reversed(procs["rotation_monitor"].log.read_text().splitlines())
                         if line.startswith("rot_rad=")))
    logged = re.search(r"rerun_viewer: logged (\d+) states \((\d+) received\)", viewer_log)
    assert logged, viewer_log[-3000:]
    summary = summarize(rrd, "driver_time")
    stamps = np.array([t.total_seconds() for t in summary.index])
    assert len(stamps) > 0 and stamps[0] == 0.0, (f"the viewer recorded {len(stamps)} states, from sim time "
                                                  f"{stamps[:1]} s: it missed the start of the run")
    assert len(stamps) == int(logged.group(1)) == int(logged.group(2))
    assert np.allclose(np.diff(stamps), PERIOD_S) and stamps[-1] >= float(result["run_s"]) - 1e-6
