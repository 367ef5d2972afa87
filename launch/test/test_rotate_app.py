"""The rotate app: its graph description, bad arguments, and whole runs over DDS (sim and emulated bus)."""
import math
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from dexndm import graph
from dexndm_policy import contract, runtime


def driver_installed() -> bool:
    try:
        from ament_index_python.packages import get_package_prefix

        return (Path(get_package_prefix("dexndm_driver")) / "lib" / "dexndm_driver" / "hand_driver").exists()
    except Exception:
        return False


needs_driver = pytest.mark.skipif(not driver_installed(), reason="hand_driver (dexndm_driver) is not built here")


def rotate(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run(["dexndm", "rotate", *args], capture_output=True, text=True, timeout=timeout)


def last_line_fields(out: subprocess.CompletedProcess) -> dict[str, float]:
    last = out.stdout.strip().splitlines()[-1]
    fields = dict(pair.split("=") for pair in last.split())
    assert list(fields)[:5] == ["rot_rad", "ttf_s", "rate_hz", "latency_p50_ms", "latency_p99_ms"], last
    return {k: float(v) for k, v in fields.items()}


def test_graph_has_driver_policy_and_required_monitor_with_typed_parameters():
    app = graph.load_app("rotate")
    specs = app.nodes(graph.resolve_arguments(app, {"axis": "(1,1,1)", "realtime_factor": "0", "residual": "off"}))
    by_name = {s.executable: s for s in specs}
    assert set(by_name) == {"hand_driver", "rotation_policy", "rotation_monitor"}
    assert [s.required for s in specs].count(True) == 1 and by_name["rotation_monitor"].required
    assert by_name["hand_driver"].parameters["realtime_factor"] == 0.0
    assert isinstance(by_name["hand_driver"].parameters["realtime_factor"], float)
    assert by_name["rotation_policy"].parameters["residual"] is False
    assert isinstance(by_name["rotation_monitor"].parameters["duration"], float)
    assert by_name["rotation_policy"].parameters["max_state_age"] == 0.0  # sim stamps are sim time
    # One clock for the sim graph: every node on sim time (/clock from the driver) ...
    assert all(s.parameters["use_sim_time"] is True for s in specs)
    # ... and no step before the monitor is matched
    assert by_name["hand_driver"].parameters["start_gate"] == "/dexndm/monitor/ready"
    assert by_name["rotation_monitor"].parameters["measure_object"] is True
    assert by_name["rotation_monitor"].parameters["track_reference"] is True  # track_err_rad in simulation
    assert by_name["rotation_monitor"].parameters["reference_reset"] == "canonical"
    hw = app.nodes(graph.resolve_arguments(app, {"hardware": "dynamixel", "port": "/dev/ttyUSB3"}))
    assert hw[0].parameters["port"] == "/dev/ttyUSB3" and hw[1].parameters["max_state_age"] > 0
    assert not any("use_sim_time" in s.parameters or "start_gate" in s.parameters for s in hw)
    assert hw[2].parameters["measure_object"] is False  # no object pose on hardware


@pytest.mark.parametrize("plot", ["none", "None", ""])
def test_plot_none_or_empty_means_no_plot(plot):
    app = graph.load_app("rotate")
    specs = app.nodes(graph.resolve_arguments(app, {"plot": plot}))
    assert specs[2].parameters["plot"] == ""


def test_gap_monitor_joins_the_graph_only_when_asked(tmp_path):
    app = graph.load_app("rotate")
    model = tmp_path / "dynamics.onnx"
    model.write_bytes(b"")  # the graph checks that the file exists; the node checks its contract
    specs = app.nodes(graph.resolve_arguments(app, {"monitor_gap": "true", "gap_model": str(model), "world": "source"}))
    by_name = {s.executable: s for s in specs}
    # in the sim graph it runs on the simulation's /clock like every other node
    assert by_name["gap_monitor"].parameters == {"model": str(model), "use_sim_time": True}
    assert not by_name["gap_monitor"].required
    assert by_name["hand_driver"].parameters["world"] == "source"
    # the sim does not step before the gap monitor is matched either (it sees the run from its first state)
    assert by_name["hand_driver"].parameters["start_gate"].split(",") == ["/dexndm/monitor/ready", "/dexndm/gap/ready"]
    default = app.nodes(graph.resolve_arguments(app, {}))
    assert default[0].parameters["start_gate"] == "/dexndm/monitor/ready"
    assert "gap_monitor" not in {s.executable for s in default} and default[0].parameters["world"] == "target"


@pytest.mark.parametrize("arg, message", [
    ("axis:=sideways", "unknown rotation axis 'sideways'"),
    ("axis:=0,0,0", "zero length"),
    ("hardware:=robot", "hardware must be one of sim, emulated, dynamixel"),
    ("generalist_model:=/nonexistent/generalist.onnx", "/nonexistent/generalist.onnx does not exist"),
    ("wrist:=sideways", "unknown wrist orientation"),
    ("duration:=-1", "duration > 0"),
    ("world:=mars", "world must be one of target, source"),
    ("monitor_gap:=maybe", "monitor_gap must be true or false"),
])
def test_cli_refuses_bad_arguments_with_a_clear_message(refused, arg, message):
    assert message in refused("rotate", arg)


@needs_driver
def test_rotate_in_simulation_runs_the_whole_graph(tmp_path):
    plot = tmp_path / "rotate.png"
    out = rotate("axis:=z", "hardware:=sim", "realtime_factor:=0", "duration:=5", f"plot:={plot}")
    assert out.returncode == 0, out.stderr[-3000:]
    fields = last_line_fields(out)
    assert math.isfinite(fields["rot_rad"]) and 0 < fields["ttf_s"] <= 5.05
    assert fields["run_s"] >= 5.0 - 1e-6 and fields["commands"] >= 75  # of the run's 100 ticks
    assert fields["rate_hz"] > 0  # unpaced lockstep runs as fast as the machine lets it: no wall-clock band
    assert 0 < fields["latency_p50_ms"] < 50.0 and fields["latency_p50_ms"] <= fields["latency_p99_ms"] < 1000.0
    assert plot.read_bytes()[:4] == b"\x89PNG"


@needs_driver
def test_rotate_through_the_emulated_dynamixel_bus(tmp_path):
    out = rotate("axis:=-x", "hardware:=emulated", "duration:=3", f"plot:={tmp_path / 'p.png'}")
    assert out.returncode == 0, out.stderr[-3000:]
    fields = last_line_fields(out)
    # The bus loop's tick schedule is tested exactly on a stepped clock (test_wire); here only that the
    # graph runs and the monitor measures it (no wall-clock rate band).
    assert fields["commands"] >= 40 and fields["rate_hz"] > 0
    assert 0 < fields["latency_p50_ms"] < 50.0


@needs_driver
def test_rotate_stops_with_a_clear_error_for_a_model_of_the_wrong_layout(tmp_path):
    model = onnx.load(str(runtime.default_model_path("residual")))
    for entry in model.metadata_props:
        if entry.key == contract.META_LAYOUT:
            entry.value = "99"
    onnx.save(model, str(tmp_path / "residual_v99.onnx"))
    out = rotate(f"residual_model:={tmp_path / 'residual_v99.onnx'}", "realtime_factor:=0", "duration:=2", timeout=90)
    assert out.returncode != 0
    assert "residual_v99.onnx: observation layout version '99'" in out.stderr


@needs_driver
def test_sim_graph_runs_on_one_clock(tmp_path):
    """PolicyStep.header.stamp was wall time while state_stamp and the joint states were sim time: now the
    policy runs on the /clock the sim driver publishes, so all three agree (bags, RViz and tf with it)."""
    import rclpy
    from rclpy.node import Node
    from rosgraph_msgs.msg import Clock

    from dexndm_description import interfaces
    from dexndm_msgs.msg import HandCommand, PolicyStep

    rclpy.init()
    probe = Node("clock_probe")
    steps, commands, clocks = [], [], []
    probe.create_subscription(PolicyStep, interfaces.POLICY_STEP, steps.append, interfaces.STREAM.profile())
    probe.create_subscription(HandCommand, interfaces.HAND_COMMAND, commands.append, interfaces.STREAM.profile())
    probe.create_subscription(Clock, interfaces.CLOCK, clocks.append, interfaces.STREAM.profile())
    app = subprocess.Popen(["dexndm", "rotate", "realtime_factor:=1", "duration:=4", "plot:=none"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while app.poll() is None:
            rclpy.spin_once(probe, timeout_sec=0.05)
        out, err = app.communicate(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
        probe.destroy_node()
        rclpy.shutdown()
    assert app.returncode == 0, err[-3000:]
    assert "plot saved" not in err  # plot:=none
    assert len(steps) >= 20 and len(commands) >= 20 and len(clocks) >= 20, (len(steps), len(commands), len(clocks))
    tick_ns = 50_000_000
    clock_ns = {interfaces.stamp_to_ns(c.clock) for c in clocks}
    for msg in steps + commands:
        header, state = interfaces.stamp_to_ns(msg.header.stamp), interfaces.stamp_to_ns(msg.state_stamp)
        # a /clock time (this test's subscriber is not gated, so it may join after the first ticks)
        assert state in clock_ns or state > max(clock_ns) or state < min(clock_ns)
        # issued on the sim clock while the sim waits for it: the state's time (a tick behind at most,
        # when the node handled the state before that tick's /clock)
        assert 0 <= state - header <= tick_ns, (header, state)


@needs_driver
def test_rotate_reports_the_tracking_error_against_the_source_world():
    """The reference is the base policy in the source world from the run's start: a source-world run without
    the residual reproduces it exactly, the target world strays from it. A state or command lost on a loaded
    machine makes the driver hold a tick the reference does not, so the source run gets three tries."""
    def run(world: str) -> dict[str, float]:
        out = rotate(f"world:={world}", "residual:=false", "realtime_factor:=0", "duration:=2", "plot:=none")
        assert out.returncode == 0, out.stderr[-3000:]
        fields = last_line_fields(out)
        assert abs(fields["track_ticks"] - fields["commands"]) <= 1  # the last command may be in flight
        return fields

    source = [run("source")]
    while source[-1]["track_err_rad"] >= 1e-4 and len(source) < 3:
        source.append(run("source"))
    assert source[-1]["track_err_rad"] < 1e-4, source
    assert run("target")["track_err_rad"] > 0.01


def test_monitor_gap_without_a_dynamics_model_says_how_to_make_one(refused):
    err = refused("rotate", "monitor_gap:=true", "gap_model:=/nonexistent/dynamics.onnx")
    assert "needs a joint-wise dynamics model" in err and "dynamics.onnx contract" in err


@needs_driver
def test_rotate_with_the_gap_monitor_reports_the_gap(tmp_path, tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src" / "dexndm_policy" / "test"))
    import dynamics_fixture as fx

    model = fx.halfway_model_path(tmp_path_factory, tmp_path)  # a law the simulated hand does not follow: a visible gap
    out = rotate("monitor_gap:=true", f"gap_model:={model}", "realtime_factor:=0", "duration:=5",
                 f"plot:={tmp_path / 'p.png'}")
    assert out.returncode == 0, out.stderr[-3000:]
    fields = last_line_fields(out)
    # every tick after the window fills: the graph waited for the gap monitor before its first state
    assert fields["gap_ticks"] >= fields["commands"] - fx.WINDOW - 2
    assert 0 < fields["gap_mean_mrad"] < 1000 and fields["gap_p95_mrad"] >= fields["gap_mean_mrad"] * 0.5
    assert "[gap_monitor] gap_ticks=" in out.stderr  # its own summary at shutdown
