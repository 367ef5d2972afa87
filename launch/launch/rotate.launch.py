"""ros2 launch dexndm rotate.launch.py axis:=z: in-hand rotation (graph in dexndm.apps.rotate)."""
from dexndm.launch_support import describe


def generate_launch_description():
    return describe("rotate")
