"""ros2 launch dexndm selfcheck.launch.py: the workspace self-check (graph in dexndm.apps.selfcheck)."""
from dexndm.launch_support import describe


def generate_launch_description():
    return describe("selfcheck")
