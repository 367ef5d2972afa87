"""The chaos_box node over real DDS against the TEST-ONLY lockstep fixture (stand-in for hand_driver)."""
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
from rclpy.action import ActionClient
from rclpy.node import Node

from dexndm_collect import verify
from dexndm_msgs.action import CollectEpisodes
from dexndm_msgs.msg import EpisodeEvent

FIXTURE = str(Path(__file__).with_name("lockstep_fixture.py"))


def chaos_box(*params):
    from ament_index_python.packages import get_package_prefix

    exe = Path(get_package_prefix("dexndm_collect")) / "lib" / "dexndm_collect" / "chaos_box"
    args = [str(exe), "--ros-args"]
    for p in params:
        args += ["-p", p]
    return args


@pytest.fixture
def hand_fixture(request):
    procs = []

    def start(*extra):
        procs.append(subprocess.Popen([sys.executable, FIXTURE, *extra]))

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def test_unattended_run_records_episodes_and_prints_the_summary(tmp_path, hand_fixture):
    hand_fixture()
    out = subprocess.run(chaos_box(f"output_dir:={tmp_path / 'bag'}", "episodes:=2", "steps:=60", "reset_steps:=5",
                                   "settle_steps:=2", "start_on_launch:=true", "exit_when_done:=true"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    last = dict(kv.split("=", 1) for kv in out.stdout.strip().splitlines()[-1].split())
    assert last["episodes"] == "2" and last["transitions"] == "120" and last["bag"] == str(tmp_path / "bag")
    checks = verify.check_collection(tmp_path / "bag")
    assert [(c.states, c.commands, c.ok) for c in checks] == [(61, 60, True)] * 2


def test_action_server_gives_feedback_per_episode(tmp_path, hand_fixture):
    hand_fixture()
    server = subprocess.Popen(chaos_box(f"output_dir:={tmp_path / 'bag'}", "steps:=40", "reset_steps:=3",
                                        "settle_steps:=0"))
    rclpy.init()
    try:
        node = Node("collect_test_client")
        events = []
        node.create_subscription(EpisodeEvent, "/dexndm/collect/episode", events.append, 10)
        client = ActionClient(node, CollectEpisodes, "/dexndm/collect/run")
        assert client.wait_for_server(timeout_sec=30.0)
        feedback = []
        goal = CollectEpisodes.Goal(episodes=3, noise_sigma=-1.0, noise_probability=-1.0, source="square", seed=4)
        send = client.send_goal_async(goal, feedback_callback=lambda f: feedback.append(f.feedback))
        deadline = time.monotonic() + 90
        while not send.done() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        result = send.result().get_result_async()
        while not result.done() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        for _ in range(20):
            rclpy.spin_once(node, timeout_sec=0.02)
        res = result.result().result
        assert res.success and res.episodes_completed == 3 and res.transitions == 120, res.message
        done = [(f.episode, f.transitions) for f in feedback if f.transitions]
        assert done[-3:] == [(1, 40), (2, 80), (3, 120)] and feedback[-1].episodes_total == 3
        assert [(e.event, e.episode) for e in events] == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
        assert {e.source for e in events} == {"square"}
        assert [c.ok for c in verify.check_collection(tmp_path / "bag")] == [True] * 3
        node.destroy_node()
    finally:
        rclpy.shutdown()
        server.terminate()
        server.wait(timeout=10)


def test_driver_diagnostics_error_stops_the_run_keeping_finished_episodes(tmp_path, hand_fixture):
    hand_fixture("--error-after", "200")
    out = subprocess.run(chaos_box(f"output_dir:={tmp_path / 'bag'}", "episodes:=5", "steps:=60", "reset_steps:=5",
                                   "settle_steps:=0", "start_on_launch:=true", "exit_when_done:=true"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "driver fault: leap_hand: bus: servo 3 overload" in out.stderr
    assert "ok=0" in out.stdout.strip().splitlines()[-1]
    checks = verify.check_collection(tmp_path / "bag")
    assert 1 <= len(checks) < 5 and all(c.ok for c in checks)


def test_sigkill_mid_episode_then_rerun_finishes_without_duplicates(tmp_path, hand_fixture):
    import json
    import signal

    hand_fixture()
    out = tmp_path / "bag"
    params = (f"output_dir:={out}", "episodes:=3", "steps:=100", "reset_steps:=3", "settle_steps:=0",
              "start_on_launch:=true", "exit_when_done:=true")
    first = subprocess.Popen(chaos_box(*params), stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until episode 1 is being written
        if (out / "episode_000000.mcap").exists() and any((out / ".partial").glob("*/*.mcap")):
            break
        time.sleep(0.01)
    time.sleep(0.05)  # some way into the episode
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert first.returncode == -9
    committed = len(verify.check_collection(out))
    partial = [p.name for p in (out / ".partial").iterdir()]
    assert 1 <= committed < 3 and partial == [f"episode_{committed:06d}"]
    second = subprocess.run(chaos_box(*params), capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "discarded partial episode(s)" in second.stderr
    last = dict(kv.split("=", 1) for kv in second.stdout.strip().splitlines()[-1].split())
    assert (last["episodes"], last["transitions"], last["new_episodes"]) == ("3", "300", str(3 - committed))
    checks = verify.check_collection(out)
    assert [(c.index, c.ok, c.commands) for c in checks] == [(0, True, 100), (1, True, 100), (2, True, 100)]
    manifest = json.loads((out / "collection.json").read_text())
    assert [e["index"] for e in manifest["episodes"]] == [0, 1, 2]
    assert [d["name"] for d in manifest["discarded"]] == partial
