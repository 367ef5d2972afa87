"""hand_driver: the LEAP hand on ROS 2 (backends dynamixel | emulated | sim); logic lives in driver.py."""
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, QuaternionStamped
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Empty
from std_srvs.srv import SetBool

from dexndm_description import hand
from dexndm_description import interfaces as ros
from dexndm_description.parameters import Param, declare
from dexndm_description.wrist import parse_wrist
from dexndm_driver import backends, diagnostics
from dexndm_driver.driver import DriverConfig, HandDriver
from dexndm_msgs.msg import HandCommand

#: Every parameter is read once at start-up (read-only): restart the driver to change one.
PARAMETERS = (
    Param("backend", "sim", "sim, emulated or dynamixel"),
    Param("port", "/dev/ttyUSB0", "serial device (dynamixel); emulated makes its own pty"),
    Param("baudrate", 4_000_000, "bus baud rate"),
    Param("rate_hz", 20.0, "wall-clock loop rate of the bus backends (Hz)"),
    Param("command_timeout", 0.5, "s: watchdog hold / lockstep wait / late-command limit"),
    Param("wrist", "palm_up", "named wrist orientation or x,y,z,w"),
    Param("object", "normal_cylinder", "simulated object set, or none (sim, emulated)"),
    Param("scene", "grasp", "grasp or chaos_box"),
    Param("world", "target", "target or source"),
    Param("realtime_factor", 1.0, "sim only: 1 paces to the wall clock, 0 runs as fast as commands come"),
    Param("seed", 0, "simulation seed"),
    Param("initial_pose", "canonical", "canonical or open: the first target after torque on / the sim's reset pose"),
    Param("autostart", True, "configure and activate at start (false: wait for /leap_hand/enable)"),
    Param("emulator_motor_model", "physics", "emulated only: physics (target world) or first_order"),
    Param("start_gate", "", "sim only: std_msgs/Empty topics (latched), comma-separated: the first state waits "
                            "for a message on every one; '' = start at once"),
)


class HandDriverNode(Node):
    def __init__(self):
        super().__init__("hand_driver")
        p = declare(self, PARAMETERS)
        wrist = parse_wrist(p["wrist"])
        world = backends.WorldConfig(wrist, backends.parse_object(p["object"]), p["scene"], p["world"], p["seed"])
        pose = backends.initial_pose(p["initial_pose"])
        backend = backends.make_backend(p["backend"], p["port"], p["baudrate"], world, pose,
                                        p["emulator_motor_model"])
        gates = tuple(dict.fromkeys(t.strip() for t in p["start_gate"].split(",") if t.strip())) if backend.lockstep else ()
        config = DriverConfig(rate_hz=p["rate_hz"], command_timeout=p["command_timeout"],
                              realtime_factor=p["realtime_factor"], initial_pose=pose, autostart=p["autostart"],
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
        self.driver = HandDriver(backend, self, config)
        for gate in gates:
            self.create_subscription(Empty, gate, lambda _, gate=gate: self.driver.open_gate(gate),
                                     ros.LATCHED.profile())
        self.driver.start()

    # ---- inputs --------------------------------------------------------------------------------
    def on_command(self, msg: HandCommand) -> None:
        check = self.driver.submit(np.asarray(msg.position, dtype=float), ros.stamp_to_ns(msg.state_stamp))
        if not check.accepted:
            self.get_logger().warn(f"command refused ({check.reason}): {check.message}", throttle_duration_sec=2.0)
        elif check.clamped:
            self.get_logger().warn(check.message, throttle_duration_sec=2.0)

    def on_enable(self, request, response):
        response.success, response.message = self.driver.request_enable(bool(request.data))
        return response

    # ---- the driver core's sink ----------------------------------------------------------------
    def state(self, reading, stamp_ns: int) -> None:
        msg = JointState(name=list(hand.JOINT_NAMES), position=reading.q.tolist(), velocity=reading.qdot.tolist(),
                         effort=reading.effort.tolist())
        ros.set_stamp(msg.header.stamp, stamp_ns)
        self.pub_state.publish(msg)
        if self.static_wrist is not None:
            self.world(backends.WorldState(None, self.static_wrist), stamp_ns)

    def clock(self, stamp_ns: int) -> None:
        msg = Clock()
        ros.set_stamp(msg.clock, stamp_ns)
        self.pub_clock.publish(msg)

    def world(self, world, stamp_ns: int) -> None:
        wrist = QuaternionStamped()
        wrist.header.frame_id = "world"
        ros.set_stamp(wrist.header.stamp, stamp_ns)
        wrist.quaternion.x, wrist.quaternion.y, wrist.quaternion.z, wrist.quaternion.w = map(float, world.wrist_quat)
        self.pub_wrist.publish(wrist)
        if world.object_pose is not None:
            pose = PoseStamped()
            pose.header = wrist.header
            pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = map(float, world.object_pose[:3])
            o = pose.pose.orientation
            o.x, o.y, o.z, o.w = map(float, world.object_pose[3:7])
            self.pub_pose.publish(pose)

    def diagnostics(self, stats, stamp_ns: int) -> None:
        msg = DiagnosticArray()
        ros.set_stamp(msg.header.stamp, stamp_ns)
        for s in diagnostics.build(stats):
            msg.status.append(DiagnosticStatus(level=bytes([s.level]), name=s.name, message=s.message,
                                               hardware_id="leap_hand",
                                               values=[KeyValue(key=k, value=v) for k, v in s.values.items()]))
        self.pub_diag.publish(msg)

    def closed(self) -> bool:
        """True once the ROS context is shut down (SIGINT/SIGTERM): publishing can only fail from then on."""
        return not self.context.ok()

    def log(self, level: str, message: str) -> None:
        logger = self.get_logger()
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
            node.driver.stop()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
