"""ros2 launch dexndm collect.launch.py: Chaos Box collection (graph in dexndm.apps.collect)."""
from dexndm.launch_support import describe


def generate_launch_description():
    return describe("collect")
