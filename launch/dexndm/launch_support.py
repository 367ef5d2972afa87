"""Turn an app's graph description into a launch description (native ROS 2 installs only).

Like the `dexndm` CLI: an argument the app does not declare is refused (ros2 launch itself would
silently ignore `hardwre:=dynamixel`), and a required node that fails makes the launch fail with a
last line naming it (launch logs the error and `ros2 launch` exits 1); a required node that ends
cleanly shuts the launch down. Include an app's launch file from another one inside a scoped
GroupAction without forwarding, so that the parent's own arguments do not reach it.
"""
from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch_ros.actions import Node

from dexndm.graph import GraphFailure, launch_nodes, load_app


def _on_required_exit(name: str):
    def on_exit(event, context):
        if event.returncode != 0:
            raise GraphFailure(f"required node {name} failed with exit code {event.returncode}; "
                               "its log above says why")
        return [EmitEvent(event=Shutdown(reason=f"required node {name} finished"))]
    return on_exit


def describe(app_name: str) -> LaunchDescription:
    app = load_app(app_name)

    def build(context):
        actions = []
        for spec in launch_nodes(app, context.launch_configurations):  # ArgumentError for a misspelled name
            node = Node(
                package=spec.package, executable=spec.executable, name=spec.name,
                parameters=[spec.parameters], remappings=list(spec.remappings.items()), output="screen",
            )
            actions.append(node)
            if spec.required:
                actions.append(RegisterEventHandler(OnProcessExit(target_action=node,
                                                                  on_exit=_on_required_exit(spec.name))))
        return actions

    declared = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description) for a in app.ARGUMENTS]
    return LaunchDescription([*declared, OpaqueFunction(function=build)])
