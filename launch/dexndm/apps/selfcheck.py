"""Workspace self-check: two nodes in two processes exchange HandCommand over Fast DDS on loopback."""
from __future__ import annotations

from dexndm.graph import Argument, NodeSpec, as_float

ARGUMENTS = (
    Argument("count", "20", "round trips to time"),
    Argument("timeout", "20.0", "seconds to wait for the echo node before failing"),
)


def nodes(args: dict[str, str]) -> list[NodeSpec]:
    count = int(as_float(args["count"], "count"))
    return [
        NodeSpec("dexndm", "selfcheck_echo", "selfcheck_echo"),
        NodeSpec(
            "dexndm", "selfcheck_probe", "selfcheck_probe",
            parameters={"count": count, "timeout": as_float(args["timeout"], "timeout")},
            required=True,
        ),
    ]
