"""Turn an app's graph description into a launch description (native ROS 2 installs only)."""
from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dexndm.graph import load_app, resolve_arguments


def describe(app_name: str) -> LaunchDescription:
    app = load_app(app_name)

    def build(context):
        given = {a.name: LaunchConfiguration(a.name).perform(context) for a in app.ARGUMENTS}
        actions = []
        for spec in app.nodes(resolve_arguments(app, given)):
            node = Node(
                package=spec.package, executable=spec.executable, name=spec.name,
                parameters=[spec.parameters], remappings=list(spec.remappings.items()), output="screen",
            )
            actions.append(node)
            if spec.required:
                actions.append(RegisterEventHandler(OnProcessExit(target_action=node, on_exit=[EmitEvent(event=Shutdown())])))
        return actions

    declared = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description) for a in app.ARGUMENTS]
    return LaunchDescription([*declared, OpaqueFunction(function=build)])
