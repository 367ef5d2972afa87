"""The environment works: real rclpy nodes in two processes talk over Fast DDS on loopback."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
from rclpy.action import ActionClient
from rclpy.node import Node

from dexndm_msgs.action import CollectEpisodes
from dexndm_msgs.msg import HandCommand
from dexndm_msgs.srv import SetRotationAxis


def test_conftest_keeps_dds_on_loopback_and_isolated():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert 1 <= int(os.environ["ROS_DOMAIN_ID"]) <= 100


@pytest.fixture(scope="module")
def peer_and_node():
    peer = subprocess.Popen([sys.executable, str(Path(__file__).with_name("ros_peer.py"))])
    rclpy.init()
    node = Node("env_test_client")
    yield node
    node.destroy_node()
    rclpy.shutdown()
    peer.send_signal(signal.SIGINT)
    try:
        peer.wait(timeout=10)
    except subprocess.TimeoutExpired:
        peer.kill()
        peer.wait(timeout=10)


def spin_until(node, predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.02)
    return predicate()


def test_hand_command_round_trip_between_processes(peer_and_node):
    node = peer_and_node
    echoes = []
    node.create_subscription(HandCommand, "/env_test/echo", echoes.append, 10)
    pub = node.create_publisher(HandCommand, "/env_test/command", 10)
    assert spin_until(node, lambda: pub.get_subscription_count() > 0), "peer never subscribed"
    msg = HandCommand()
    msg.position = [float(i) for i in range(16)]
    msg.state_stamp.sec = 7

    def send_and_check():
        if not echoes:
            pub.publish(msg)
        return bool(echoes)

    assert spin_until(node, send_and_check)
    assert list(echoes[0].position) == [2.0 * i for i in range(16)]
    assert echoes[0].state_stamp.sec == 7


def test_set_rotation_axis_service(peer_and_node):
    node = peer_and_node
    client = node.create_client(SetRotationAxis, "/env_test/set_axis")
    assert client.wait_for_service(timeout_sec=20.0)
    future = client.call_async(SetRotationAxis.Request(name="-y"))
    assert spin_until(node, future.done)
    assert future.result().success and future.result().axis.y == pytest.approx(-1.0)
    future = client.call_async(SetRotationAxis.Request(name="sideways"))
    assert spin_until(node, future.done)
    assert not future.result().success and "unknown rotation axis" in future.result().message


def test_collect_episodes_action_gives_feedback_and_result(peer_and_node):
    node = peer_and_node
    client = ActionClient(node, CollectEpisodes, "/env_test/collect")
    assert client.wait_for_server(timeout_sec=20.0)
    feedback = []
    send = client.send_goal_async(CollectEpisodes.Goal(episodes=3), feedback_callback=lambda f: feedback.append(f.feedback))
    assert spin_until(node, send.done)
    goal_handle = send.result()
    assert goal_handle.accepted
    result = goal_handle.get_result_async()
    assert spin_until(node, result.done)
    assert result.result().result.episodes_completed == 3
    assert [f.episode for f in feedback] == [0, 1, 2]
    assert feedback[-1].transitions == 1200


def test_selfcheck_app_runs_a_graph_across_processes():
    out = subprocess.run(["dexndm", "selfcheck", "count:=5"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    fields = dict(pair.split("=") for pair in last.split())
    assert fields["round_trips"] == "5" and fields["ok"] == "1"


def test_cli_refuses_unknown_arguments_and_apps():
    out = subprocess.run(["dexndm", "selfcheck", "bogus:=1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "unknown argument(s) bogus" in out.stderr
    out = subprocess.run(["dexndm", "nosuchapp"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "unknown app" in out.stderr
    out = subprocess.run(["dexndm", "selfcheck", "count"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "name:=value" in out.stderr


def test_nodes_die_with_a_killed_cli():
    """A SIGKILLed `dexndm` (e.g. a timed-out test) must not leave its nodes running."""
    proc = subprocess.Popen(["dexndm", "selfcheck", "count:=100000", "timeout:=60"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    children = []
    while time.monotonic() < deadline and len(children) < 2:
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        time.sleep(0.1)
    assert len(children) == 2, "the selfcheck graph did not start two nodes"
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in children):
        time.sleep(0.1)
    alive = [pid for pid in children if Path(f"/proc/{pid}/status").exists()
             and "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()]
    assert not alive, f"nodes {alive} outlived the killed CLI"
