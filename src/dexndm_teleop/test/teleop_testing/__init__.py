"""Test tooling of the teleop tests and benchmark, kept out of the runtime package (the teleop node never imports it).

- browser: headless Chromium over CDP with IWER emulating a Quest 3;
- harness: the installed teleop node as a process, its URL and log;
- ros_probe: a ROS peer standing in for the arm and the policy's enable service.

Tests put src/dexndm_teleop/test on sys.path (this directory's conftest does it for teleop's own tests).
"""
