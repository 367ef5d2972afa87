"""A peer process for the environment test: echoes HandCommand, serves SetRotationAxis and CollectEpisodes."""
import time

import rclpy
from geometry_msgs.msg import Vector3
from rclpy.action import ActionServer
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from dexndm_description.axes import parse_axis
from dexndm_msgs.action import CollectEpisodes
from dexndm_msgs.msg import HandCommand
from dexndm_msgs.srv import SetRotationAxis


class Peer(Node):
    def __init__(self):
        super().__init__("env_test_peer")
        self.echo = self.create_publisher(HandCommand, "/env_test/echo", 10)
        self.create_subscription(HandCommand, "/env_test/command", self.on_command, 10)
        self.create_service(SetRotationAxis, "/env_test/set_axis", self.on_set_axis)
        ActionServer(self, CollectEpisodes, "/env_test/collect", self.on_collect)

    def on_command(self, msg):
        msg.position = [2.0 * p for p in msg.position]
        self.echo.publish(msg)

    def on_set_axis(self, request, response):
        try:
            axis = parse_axis(request.name if request.name else [request.axis.x, request.axis.y, request.axis.z])
        except ValueError as err:
            response.success, response.message = False, str(err)
            return response
        response.success, response.message = True, "ok"
        response.axis = Vector3(x=float(axis[0]), y=float(axis[1]), z=float(axis[2]))
        return response

    def on_collect(self, goal_handle):
        for episode in range(goal_handle.request.episodes):
            feedback = CollectEpisodes.Feedback(episode=episode, episodes_total=goal_handle.request.episodes,
                                                step=400, transitions=400 * (episode + 1))
            goal_handle.publish_feedback(feedback)
            time.sleep(0.05)
        goal_handle.succeed()
        return CollectEpisodes.Result(success=True, episodes_completed=goal_handle.request.episodes,
                                      transitions=400 * goal_handle.request.episodes, bag_path="/tmp/none")


def main():
    rclpy.init()
    node = Peer()
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
