"""ros2 launch dexndm teleop.launch.py: Quest 3 WebXR teleop (graph in dexndm.apps.teleop)."""
from dexndm.launch_support import describe


def generate_launch_description():
    return describe("teleop")
