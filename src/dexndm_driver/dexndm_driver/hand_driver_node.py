"""hand_driver: the LEAP hand on ROS 2 (backends dynamixel | emulated | sim) as a lifecycle node.

configure opens the port (or builds the sim), activate turns torque on, deactivate turns it off,
cleanup closes the port, shutdown from any state leaves the hand limp and the port closed; the
lifecycle services (`ros2 lifecycle set /hand_driver configure`, ...) drive them, and
`/leap_hand/enable` is a shorthand for activate/deactivate. With `autostart` (the apps) the node
configures (retrying every second while the port is missing) and activates itself. The logic
lives in driver.py; messages are built in messages.py.
"""
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, QuaternionStamped
from lifecycle_msgs.srv import ChangeState
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Empty
from std_srvs.srv import SetBool

from dexndm_description import interfaces as ros
from dexndm_description.parameters import Param, declare
from dexndm_description.wrist import parse_wrist
from dexndm_driver import backends, messages
from dexndm_driver.driver import DriverConfig, HandDriver
from dexndm_driver.states import DriverState
from dexndm_msgs.msg import HandCommand

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE

#: Every parameter is read once at start-up (read-only): restart the driver to change one.
PARAMETERS = (
    Param("backend", "sim", "sim, emulated or dynamixel"),
    Param("port", "/dev/ttyUSB0", "serial device (dynamixel); emulated makes its own pty"),
    Param("baudrate", 4_000_000, "bus baud rate"),
    Param("latency_ms", 16.0, "USB latency allowance in the SDK's reply timeout (ms): 16 is the SDK's own; "
                              "4 with the FTDI latency timer at 1 ms"),
    Param("rate_hz", 20.0, "wall-clock loop rate of the bus backends (Hz)"),
    Param("command_timeout", 0.5, "s: watchdog hold / lockstep wait / late-command limit"),
    Param("wrist", "palm_up", "named wrist orientation or x,y,z,w"),
    Param("object", "normal_cylinder", "simulated object set, or none (sim, emulated)"),
    Param("scene", "grasp", "grasp or chaos_box"),
    Param("world", "target", "target or source"),
    Param("realtime_factor", 1.0, "sim only: 1 paces to the wall clock, 0 runs as fast as commands come"),
    Param("seed", 0, "simulation seed"),
    Param("initial_pose", "canonical", "canonical or open: the first target after torque on / the sim's reset pose"),
    Param("autostart", True, "configure and activate at start (false: start unconfigured; the lifecycle "
                             "services or /leap_hand/enable bring it up)"),
    Param("emulator_motor_model", "physics", "emulated only: physics (target world) or first_order"),
    Param("start_gate", "", "sim only: std_msgs/Empty topics (latched), comma-separated: the first state waits "
                            "for a message on every one; '' = start at once"),
)


class HandDriverNode(LifecycleNode):
    def __init__(self):
        super().__init__("hand_driver")
        p = declare(self, PARAMETERS)
        wrist = parse_wrist(p["wrist"])
        world = backends.WorldConfig(wrist, backends.parse_object(p["object"]), p["scene"], p["world"], p["seed"])
        pose = backends.initial_pose(p["initial_pose"])
        backend = backends.make_backend(p["backend"], p["port"], p["baudrate"], world, pose,
                                        p["emulator_motor_model"], p["latency_ms"])
        gates = tuple(dict.fromkeys(t.strip() for t in p["start_gate"].split(",") if t.strip())) if backend.lockstep else ()
        config = DriverConfig(rate_hz=p["rate_hz"], command_timeout=p["command_timeout"],
                              realtime_factor=p["realtime_factor"], initial_pose=pose,
                              use_sim_time=bool(self.get_parameter("use_sim_time").value), start_gates=gates)
        self.static_wrist = None if backend.lockstep or p["backend"] == "emulated" else wrist
        stream = ros.STREAM.profile()
        self.pub_state = self.create_publisher(JointState, ros.JOINT_STATES, stream)
        self.pub_diag = self.create_publisher(DiagnosticArray, ros.DIAGNOSTICS, stream)
        self.pub_clock = self.create_publisher(Clock, ros.CLOCK, stream) if backend.lockstep else None
        self.pub_pose = self.create_publisher(PoseStamped, ros.OBJECT_POSE, stream)
        self.pub_wrist = self.create_publisher(QuaternionStamped, ros.WRIST_ORIENTATION, stream)
        self.create_subscription(HandCommand, ros.HAND_COMMAND, self.on_command, stream)
        self.create_service(SetBool, ros.HAND_ENABLE, self.on_enable)
        self._refuse_invalid_transitions()
        self.driver = HandDriver(backend, self, config)
        for gate in gates:
            self.create_subscription(Empty, gate, lambda _, gate=gate: self.driver.open_gate(gate),
                                     ros.LATCHED.profile())
        self.driver.start()
        self._result = (False, "")  # (ok, message) of the last transition, for /leap_hand/enable
        self._autostart = None
        if p["autostart"] and not self._bring_up():
            self._autostart = self.create_timer(config.reconnect_period, self._bring_up)

    # ---- lifecycle: each transition is carried out by the driver core ------------------------
    def _transition(self, result: tuple[bool, str]) -> TransitionCallbackReturn:
        self._result = result
        if not result[0]:
            self.get_logger().warn(result[1], throttle_duration_sec=10.0)
        return SUCCESS if result[0] else FAILURE

    def on_configure(self, state):
        return self._transition(self.driver.configure())

    def on_activate(self, state):
        return self._transition(self.driver.activate())

    def on_deactivate(self, state):
        return self._transition(self.driver.deactivate())

    def on_cleanup(self, state):
        return self._transition(self.driver.cleanup())

    def on_shutdown(self, state):
        return self._transition(self.driver.shutdown())

    def on_error(self, state):
        """A transition raised: make the hand safe; back to unconfigured if the port could be closed."""
        if self.driver.state is DriverState.ACTIVE:
            self.driver.deactivate()
        if self.driver.state is DriverState.INACTIVE:
            self.driver.cleanup()
        if self.driver.state is DriverState.UNCONFIGURED:
            return SUCCESS
        self.driver.shutdown()
        return FAILURE

    def _bring_up(self) -> bool:
        """autostart: configure (one attempt; the timer retries) and activate. True once done."""
        if self.driver.state is DriverState.UNCONFIGURED and self.trigger_configure() != SUCCESS:
            return False
        if self.driver.state is DriverState.INACTIVE:
            self.trigger_activate()
        if self._autostart is not None:
            self._autostart.cancel()
        return True

    def _refuse_invalid_transitions(self) -> None:
        """rclpy 7.1 (Jazzy) lets an impossible change_state request (activate while unconfigured) raise
        out of the executor and kill the node (ros2/rclpy#1209, fixed in later releases): answer
        success=false instead, as rclcpp does."""
        for service in self.services:
            if service.srv_type is ChangeState:
                change_state = service.callback

                def guarded(request, response, change_state=change_state):
                    try:
                        return change_state(request, response)
                    except Exception as err:  # RCLError: "Transition is not registered"
                        self.get_logger().warn(f"lifecycle transition {request.transition.id} "
                                               f"'{request.transition.label}' refused: {err}")
                        response.success = False
                        return response

                service.callback = guarded

    # ---- inputs --------------------------------------------------------------------------------
    def on_command(self, msg: HandCommand) -> None:
        check = self.driver.submit(np.asarray(msg.position, dtype=float), ros.stamp_to_ns(msg.state_stamp))
        if not check.accepted:
            self.get_logger().warn(f"command refused ({check.reason}): {check.message}", throttle_duration_sec=2.0)
        elif check.clamped:
            self.get_logger().warn(check.message, throttle_duration_sec=2.0)

    def on_enable(self, request, response):
        """true: activate (configuring first if needed; when active, re-enable: reboot faulted servos,
        torque on again); false: deactivate."""
        state = self.driver.state
        if request.data:
            if state is DriverState.UNCONFIGURED and self.trigger_configure() != SUCCESS:
                response.success, response.message = self._result
                return response
            if self.driver.state is DriverState.INACTIVE:
                self.trigger_activate()
            else:
                self._result = self.driver.activate()
        elif state is DriverState.ACTIVE:
            self.trigger_deactivate()
        else:
            self._result = (state is not DriverState.FINALIZED, f"torque off (the driver is {state.value})")
        response.success, response.message = self._result
        return response

    # ---- the driver core's sink ----------------------------------------------------------------
    def state(self, reading, stamp_ns: int) -> None:
        self.pub_state.publish(messages.joint_state(reading, stamp_ns))
        if self.static_wrist is not None:
            self.world(backends.WorldState(None, self.static_wrist), stamp_ns)

    def clock(self, stamp_ns: int) -> None:
        self.pub_clock.publish(messages.clock(stamp_ns))

    def world(self, world, stamp_ns: int) -> None:
        wrist, pose = messages.world(world, stamp_ns)
        self.pub_wrist.publish(wrist)
        if pose is not None:
            self.pub_pose.publish(pose)

    def diagnostics(self, stats, stamp_ns: int) -> None:
        self.pub_diag.publish(messages.diagnostics(stats, stamp_ns))

    def closed(self) -> bool:
        """True once the ROS context is shut down (SIGINT/SIGTERM): publishing can only fail from then on."""
        return not self.context.ok()

    def log(self, level: str, message: str) -> None:
        logger = self.get_logger()  # one call site per severity: rclpy refuses a severity change at one site
        if level == "info":
            logger.info(message)
        elif level == "warn":
            logger.warning(message)
        else:
            logger.error(message)


def main(args=None):
    rclpy.init(args=args)
    node = None
    try:
        node = HandDriverNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as err:  # a bad parameter: say which and what is valid
        rclpy.logging.get_logger("hand_driver").fatal(str(err))
        raise SystemExit(2) from None
    finally:
        if node is not None:
            node.driver.stop()  # from any state: torque off, port closed
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
