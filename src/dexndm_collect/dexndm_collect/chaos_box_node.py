"""chaos_box: replays targets to the hand in lockstep with its joint states and records episodes to rosbag2.

Goals arrive on the action /dexndm/collect/run (CollectEpisodes), or from parameters when
`start_on_launch` is true (unattended runs; `exit_when_done` ends the process after the summary line).
The logic lives in `collector.CollectionRun`; this node only wires it to topics.
"""
from __future__ import annotations

import signal
import sys
import threading

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import QuaternionStamped
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.serialization import deserialize_message, serialize_message
from rclpy.signals import SignalHandlerOptions
from rclpy.task import Future
from sensor_msgs.msg import JointState

from dexndm_collect import bag, collector
from dexndm_description import interfaces as ros
from dexndm_description.parameters import Param, declare
from dexndm_collect.sources import SourceError
from dexndm_msgs.action import CollectEpisodes
from dexndm_msgs.msg import EpisodeEvent, HandCommand

#: Settings of unattended runs and the defaults of action goals; read at start-up (read-only).
PARAMETERS = tuple(Param(name, collector.DEFAULTS[name], text) for name, text in (
    ("output_dir", "output rosbag2 directory (created or resumed)"),
    ("episodes", "episodes the output directory should hold"),
    ("source", "replay source: sim_rollouts, sine, square, square_noise or file"),
    ("source_path", "dataset directory (sim_rollouts) or .npy/.csv targets (file)"),
    ("noise_sigma", "Gaussian noise added to replayed targets (rad)"),
    ("noise_probability", "probability per step that the noise is added"),
    ("wrist", "wrist orientation label recorded with each episode"),
    ("seed", "seed of the replay source"),
    ("steps", "control steps per episode"),
    ("reset_steps", "ticks of the linear move to an episode's first target"),
    ("settle_steps", "ticks holding the first target before the episode starts"),
    ("state_timeout", "s without a joint state before the run stops with a driver fault (steady clock)"),
    ("bus_retries", "episodes per run redone after a bus error (lost reads, lost port) before the run stops"),
    ("min_free_mb", "stop before an episode when less disk space is free (MB)"),
)) + (
    Param("start_on_launch", False, "start a run from these parameters at once (unattended)"),
    Param("exit_when_done", False, "end the process after an unattended run's summary line"),
    Param("progress_bar", False, "show a progress bar on stderr"),
)
RELIABLE = ros.STREAM.profile()
WRIST_TOPIC = ros.WRIST_ORIENTATION


class ChaosBoxNode(Node):
    def __init__(self):
        super().__init__("chaos_box")
        self.p = declare(self, PARAMETERS)
        self.run: collector.CollectionRun | None = None
        self.finished, self.exit_code = threading.Event(), 0
        self.goal_handle, self.bar = None, None
        self.run_finished: Future | None = None  # completed by on_tick when an action's run ends
        self.cmd_pub = self.create_publisher(HandCommand, bag.COMMAND_TOPIC, RELIABLE)
        self.event_pub = self.create_publisher(EpisodeEvent, bag.EPISODE_TOPIC, RELIABLE)
        self.create_subscription(JointState, bag.STATE_TOPIC, self.on_state, RELIABLE, raw=True)
        self.create_subscription(QuaternionStamped, WRIST_TOPIC, lambda raw: self._record(WRIST_TOPIC, raw),
                                 RELIABLE, raw=True)
        self.create_subscription(DiagnosticArray, ros.DIAGNOSTICS, self.on_diagnostics, RELIABLE, raw=True)
        # Steady clock: under use_sim_time a dead driver stops /clock, and the state timeout must still fire.
        self.create_timer(0.2, self.on_tick, clock=Clock(clock_type=ClockType.STEADY_TIME))
        ActionServer(self, CollectEpisodes, ros.COLLECT_RUN, self.execute, goal_callback=self.on_goal,
                     cancel_callback=lambda _: CancelResponse.ACCEPT)
        if self.p["start_on_launch"]:
            try:
                self.start(self.p)
            except (SourceError, bag.BagError) as err:
                self.get_logger().error(str(err))
                self.exit_code = 2
                self.finished.set()

    # ---- collector.Outputs ----------------------------------------------------------------------
    def command(self, target, state_stamp_ns):
        msg = HandCommand(position=[float(x) for x in target])
        msg.header.stamp = self.get_clock().now().to_msg()
        ros.set_stamp(msg.state_stamp, state_stamp_ns)
        self.cmd_pub.publish(msg)
        return serialize_message(msg)

    def event(self, kind, episode, steps, reason):
        msg = EpisodeEvent(event=kind, episode=episode, steps=steps, source=self.run.source.name,
                           wrist=self.run.wrist_label, reason=reason)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.event_pub.publish(msg)
        return serialize_message(msg)

    # ---- runs -----------------------------------------------------------------------------------
    def start(self, cfg: dict) -> collector.CollectionRun:
        self.run = run = collector.make_run(cfg, self, on_progress=self.on_progress)
        if run.discarded:
            self.get_logger().warn(f"discarded partial episode(s) from an interrupted run: {run.discarded}")
        self.get_logger().info(f"collecting into {run.writer.out}: next episode {run.index}, "
                               f"{run.completed}/{run.episodes_total} done")
        if self.p["progress_bar"]:
            from tqdm import tqdm

            self.bar = tqdm(total=run.episodes_total, initial=run.completed, unit="ep", file=sys.stderr)
        return run

    def on_state(self, raw):
        if self.run is not None and not self.run.done:
            msg = deserialize_message(raw, JointState)
            stamp = ros.stamp_to_ns(msg.header.stamp)
            self.run.on_state(np.asarray(msg.position, dtype=float), stamp, raw)

    def _record(self, topic, raw):
        if self.run is not None:
            self.run.record(topic, raw)

    def on_diagnostics(self, raw):
        self._record(ros.DIAGNOSTICS, raw)
        errors = [(s.name, s.message) for s in deserialize_message(raw, DiagnosticArray).status
                  if s.level == DiagnosticStatus.ERROR]
        if errors and self.run is not None:
            self.run.on_driver_errors(errors)

    def on_tick(self):
        if self.run is None:
            return
        self.run.check_timeout()
        if self.goal_handle is not None and self.goal_handle.is_cancel_requested:
            self.run.fail("canceled by the action client")
        if self.run.done and self.run_finished is not None and not self.run_finished.done():
            self.run_finished.set_result(True)
        if self.run.done and self.p["start_on_launch"] and not self.finished.is_set():
            if self.bar is not None:
                self.bar.close()
            if self.run.failure:
                self.get_logger().error(f"collection stopped: {self.run.failure}")
            print(self.run.summary(), flush=True)
            self.exit_code = 1 if self.run.failure else 0
            self.finished.set()

    def on_progress(self, p: collector.Progress):
        """After each episode: the progress bar and the action feedback."""
        if self.bar is not None:
            self.bar.update(p.completed - self.bar.n)
            self.bar.set_postfix(transitions=p.transitions, ep_per_min=f"{p.episodes_per_minute:.1f}")
        if self.goal_handle is not None:
            self.goal_handle.publish_feedback(CollectEpisodes.Feedback(
                episode=p.episode, episodes_total=p.episodes_total, step=p.step, transitions=p.transitions,
                episodes_per_minute=p.episodes_per_minute, eta_s=min(p.eta_s, 1e12)))

    # ---- action ---------------------------------------------------------------------------------
    def on_goal(self, goal):
        return GoalResponse.REJECT if self.run is not None and not self.run.done else GoalResponse.ACCEPT

    async def execute(self, goal_handle):
        """Runs as a coroutine on the node's single thread: states keep flowing while it awaits the run."""
        g = goal_handle.request
        self.goal_handle = goal_handle
        try:
            run = self.start(collector.with_goal(self.p, g.episodes, g.source, g.source_path, g.wrist, g.seed,
                                                 g.noise_sigma, g.noise_probability))
        except (SourceError, bag.BagError) as err:
            goal_handle.abort()
            return CollectEpisodes.Result(success=False, message=str(err))
        self.run_finished = Future()
        await self.run_finished
        self.goal_handle = self.run_finished = None
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif run.failure:
            goal_handle.abort()
        else:
            goal_handle.succeed()
        return CollectEpisodes.Result(success=not run.failure, message=run.failure or "ok",
                                      bag_path=str(run.writer.out.resolve()), episodes_completed=run.completed,
                                      transitions=run.transitions)


def main():
    # SIGINT and SIGTERM are handled here, not by rclpy: the reason names the real signal, and the context
    # stays up, so the open episode is aborted (recorded in the manifest, ABORT published) before shutdown.
    received: list[str] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: received.append(signal.Signals(signum).name))
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = ChaosBoxNode()
    # One thread: MultiThreadedExecutor.spin_once in a loop busy-polls and starved the state callbacks.
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok() and not received and not (node.finished.is_set() and node.p["exit_when_done"]):
            executor.spin_once(timeout_sec=0.1)
        if received and node.run is not None and not node.run.done:
            node.run.fail(f"interrupted ({received[0]})")
            node.get_logger().warn(f"collection stopped: interrupted ({received[0]}); rerun to resume")
            if node.p["start_on_launch"]:
                print(node.run.summary(), flush=True)
        if received:
            node.exit_code = 128 + signal.Signals[received[0]].value
    except ExternalShutdownException:
        if node.run is not None:  # rclpy is already shut down: nothing can be published now
            node.run.fail("interrupted (ROS context shut down)", publish=False)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    sys.exit(node.exit_code)
