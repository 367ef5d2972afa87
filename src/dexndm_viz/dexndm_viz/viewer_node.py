"""rerun_viewer: logs the runtime topics to rerun (dexndm_viz.recorder); publishes only its ready signal.

Once every topic named in `match` has a matched publisher it publishes std_msgs/Empty on
/dexndm/viz/ready (latched); the apps' sim driver waits for it (start_gate) as for the rotation
monitor's, so a viewer that starts late still records the run from its first state.

It stays out of the control loop's way: it runs at nice 10 with the longest scheduling slice (all its
threads and its session group, see `lower_priority`: a control-loop task that wakes takes the CPU from
it at once), and in batches, waking once per `flush_period` (0.5 s) to take every queued message and send
the complete rows, so it does not wake with every state the policy is answering. It takes the messages
straight from its subscriptions, one per topic in turn, without an executor (whose wait and dispatch
added about 0.1 ms of CPU to every message: 0.23-0.29 against 0.13-0.16 ms per message taken and
recorded). Subscriptions are keep-last (never blocking a publisher) and 1000 deep, enough for a batch of
an unpaced simulation. The state->command latency it plots is rotation_monitor's: the state's DDS source
timestamp to the command's DDS reception timestamp.
"""
from __future__ import annotations

import collections
import math
import signal
import sys
import threading
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, QuaternionStamped
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState
from std_msgs.msg import Empty

from dexndm_description import interfaces as ros
from dexndm_msgs.msg import EpisodeEvent, HandCommand, PolicyStep
from dexndm_viz.layout import default_blueprint
from dexndm_viz.recorder import HandRecorder
from dexndm_viz.viewers import VizError, lower_priority, open_recording

RELIABLE = ros.VIEWER_STREAM.profile()
QUEUE_DEPTH = ros.VIEWER_STREAM.depth
ANY = ros.VIEWER_ANY.profile()
EVENTS = {EpisodeEvent.START: "START", EpisodeEvent.END: "END", EpisodeEvent.ABORT: "ABORT"}
TIMESTAMP_AFTER_S = 1e8  # stamps later than this (~3 years after 1970) are wall clock, earlier ones sim time
READY_POLL_S = 0.02  # s between checks for matched publishers before the ready signal (the graph waits on it)
FINAL_DRAIN_S, FINAL_QUIET_S = 3.0, 0.3  # s: the last drain's budget (the runner's SIGTERM comes after 5 s), quiet
POLL_S = 0.05  # s between takes in the last drain
BATCH_BUDGET_S = 2.0  # s at most taking one batch, so that a viewer starved of CPU still flushes and stops on time
MATCHABLE = (ros.JOINT_STATES, ros.HAND_COMMAND, ros.POLICY_STEP, ros.OBJECT_POSE, ros.EPISODE)


ns = ros.stamp_to_ns


class ViewerNode(Node):
    def __init__(self):
        # No parameter services: the viewer takes no requests (and runs no executor that could answer them).
        super().__init__("rerun_viewer", start_parameter_services=False)
        p = {name: self.declare_parameter(name, default).value for name, default in (
            ("mode", "rerun"), ("recording", "output/rotate.rrd"), ("web_port", 9090), ("object", "none"),
            ("wrist", "palm_up"), ("axis", "z"), ("name", "dexndm"), ("flush_period", 0.5),
            ("match", f"{ros.JOINT_STATES},{ros.HAND_COMMAND}"))}
        awaited = [t.strip() for t in p["match"].split(",") if t.strip()]
        if unknown := [t for t in awaited if t not in MATCHABLE]:
            raise VizError(f"match names {', '.join(unknown)}; the viewer can wait for {', '.join(MATCHABLE)}")
        self.stream, self.viewer = open_recording(p["mode"], p["recording"], "dexndm", p["name"], default_blueprint(),
                                                  int(p["web_port"]))
        obj = None if p["object"].strip().lower() in ("", "none") else p["object"].strip()
        self.recorder = HandRecorder(self.stream, obj, p["wrist"], p["axis"])
        self.ticks = 0
        self.clock_kind: str | None = None
        self.state_written: collections.OrderedDict[int, float] = collections.OrderedDict()  # stamp -> DDS source s
        self.takes: list[tuple] = []  # (subscription, callback(msg, info)), taken in this order: states before answers
        subs = {ros.JOINT_STATES: self.subscribe(JointState, ros.JOINT_STATES, self.on_state),
                ros.HAND_COMMAND: self.subscribe(HandCommand, ros.HAND_COMMAND, self.on_command)}
        subs[ros.POLICY_STEP] = self.subscribe(PolicyStep, ros.POLICY_STEP, lambda m, _: self.recorder.add_step(
            ns(m.state_stamp), m.base_target, m.residual, m.executed_target, m.axis, m.inference_ms))
        subs[ros.OBJECT_POSE] = self.subscribe(PoseStamped, ros.OBJECT_POSE, lambda m, _: self.recorder.add_object_pose(
            ns(m.header.stamp), [m.pose.position.x, m.pose.position.y, m.pose.position.z],
            [m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z, m.pose.orientation.w]))
        self.subscribe(QuaternionStamped, ros.WRIST_ORIENTATION, lambda m, _: self.recorder.set_wrist(
            (m.quaternion.x, m.quaternion.y, m.quaternion.z, m.quaternion.w)), ANY)
        self.subscribe(DiagnosticArray, ros.DIAGNOSTICS, self.on_diagnostics)
        subs[ros.EPISODE] = self.subscribe(EpisodeEvent, ros.EPISODE, self.on_episode)
        self.awaited = [subs[t] for t in awaited]
        self.ready_pub = self.create_publisher(Empty, ros.VIEWER_READY, ros.LATCHED.profile())
        self.ready = False
        self.flush_period = float(p["flush_period"])
        self.mode = p["mode"]
        where = [f"recording to {Path(p['recording']).resolve()}"] if p["recording"] else []
        if self.viewer is not None:
            where.append(("web viewer at " if p["mode"] == "web" else "native viewer on ") + self.viewer.url)
        print(f"rerun_viewer: {'; '.join(where)}", file=sys.stderr, flush=True)
        lower_priority()  # once subscribed: start-up (imports, the model) runs at normal priority

    def on_state(self, msg: JointState, info) -> None:
        stamp = ns(msg.header.stamp)
        if self.clock_kind is None:
            self.clock_kind = "timestamp" if stamp * 1e-9 > TIMESTAMP_AFTER_S else "duration"
        self.state_written[stamp] = info.get("source_timestamp", 0) * 1e-9
        while len(self.state_written) > 1000:
            self.state_written.popitem(last=False)
        self.recorder.add_state((("tick", "sequence", self.ticks), ("driver_time", self.clock_kind, stamp * 1e-9)),
                                stamp, msg.position)
        self.ticks += 1

    def on_command(self, msg: HandCommand, info) -> None:
        stamp = ns(msg.state_stamp)
        written, received = self.state_written.get(stamp), info.get("received_timestamp", 0) * 1e-9
        latency = 1e3 * (received - written) if written and received else float("nan")
        self.recorder.add_command(stamp, msg.position, latency)

    def subscribe(self, msg_type, topic: str, callback, qos=RELIABLE):
        """A subscription whose messages `drain` takes and hands to callback(msg, info); no executor runs it."""
        sub = self.create_subscription(msg_type, topic, lambda *_: None, qos)
        self.takes.append((sub, callback))
        return sub

    def signal_ready(self) -> bool:
        """Publish the ready signal once every awaited topic has a matched publisher; True from then on."""
        if not self.ready and all(sub.get_publisher_count() > 0 for sub in self.awaited):
            self.ready_pub.publish(Empty())
            self.ready = True
        return self.ready

    def drain(self, deadline: float = math.inf) -> int:
        """Take every queued message, one per topic in turn (the order an executor gives), each to its
        callback, until the queues are empty, a queue's depth per topic was taken (an unpaced graph cannot
        keep it here) or time.monotonic() passes deadline (a viewer starved of CPU still stops on time);
        returns how many."""
        taken = 0
        for _ in range(QUEUE_DEPTH):
            before = taken
            for sub, callback in self.takes:
                with sub.handle:  # rclpy's own take, as an executor does once its wait has returned
                    got = sub.handle.take_message(sub.msg_type, sub.raw)
                if got is not None:
                    callback(*got)
                    taken += 1
            if taken == before or time.monotonic() > deadline:
                break
        return taken

    def drain_until_quiet(self, budget_s: float, quiet_s: float) -> None:
        """The last drain: until no message came for quiet_s, at most budget_s, so that what the DDS threads
        (niced like the rest) are still taking in is not left behind."""
        deadline = last = time.monotonic()
        deadline += budget_s
        while time.monotonic() < deadline and time.monotonic() - last < quiet_s:
            if self.drain(deadline):
                last = time.monotonic()
            else:
                time.sleep(POLL_S)

    def on_diagnostics(self, msg: DiagnosticArray, _info=None) -> None:
        self.recorder.log_diagnostics([(s.level[0] if isinstance(s.level, bytes) else int(s.level), s.name, s.message,
                                        {kv.key: kv.value for kv in s.values}) for s in msg.status])

    def on_episode(self, msg: EpisodeEvent, _info=None) -> None:
        times = self.recorder.latest_times
        if times is not None:
            text = f"episode {msg.episode} {EVENTS.get(msg.event, msg.event)} after {msg.steps} steps"
            self.recorder.log_event(times, text + (f": {msg.reason}" if msg.reason else ""),
                                    "WARN" if msg.event == EpisodeEvent.ABORT else "INFO")

    def close(self) -> None:
        self.recorder.flush(final=True)
        try:
            self.stream.flush()
        except RuntimeError as err:  # a viewer that went away (its window closed, or it could not start)
            print(f"rerun_viewer: {err}; the recording file is written all the same", file=sys.stderr, flush=True)
        self.stream.disconnect()
        s = self.recorder.stats
        print(f"rerun_viewer: logged {s.rows_sent} states ({s.states} received), {s.commands} commands, {s.steps} policy "
              f"steps, {s.poses} object poses, {s.unmatched} unmatched; flush mean "
              f"{s.flush_ms_total / max(s.flushes, 1):.1f} ms max {s.flush_ms_max:.1f} ms", file=sys.stderr, flush=True)
        if self.viewer is not None and self.mode == "web":  # a native window stays open for the user
            self.viewer.stop()


def main() -> None:
    # Our own SIGINT/SIGTERM handling: a flag checked between batches, so a stop never lands inside a
    # flush (rows half sent) and the last rows and the file footer are always written.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        node = ViewerNode()
    except VizError as err:
        print(f"rerun_viewer: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)
    try:
        while not stop.is_set() and rclpy.ok():
            stop.wait(node.flush_period if node.signal_ready() else READY_POLL_S)
            node.drain(time.monotonic() + BATCH_BUDGET_S)
            node.recorder.flush()
    finally:
        node.drain_until_quiet(FINAL_DRAIN_S, FINAL_QUIET_S)
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()
