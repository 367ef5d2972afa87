"""The page -> server message schema: what passes and what is refused, with a reason."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dexndm_teleop.schema import MAX_MESSAGE_BYTES, SchemaError, parse_message

HAND = {"pos": [0.1, 1.2, -0.3], "quat": [0.0, 0.0, 0.0, 1.0], "buttons": [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
        "axes": [0.0, 0.0, 0.5, -0.5]}


def message(**changes):
    base = {"type": "frame", "seq": 3, "t": 1.7e12, "left": HAND, "right": dict(HAND)}
    base.update(changes)
    return json.dumps(base)


def test_a_valid_frame_and_idle():
    sample = parse_message(message(left=None))
    assert sample.kind == "frame" and sample.seq == 3 and sample.left is None
    assert np.allclose(sample.right.pose.position, [0.1, 1.2, -0.3])
    assert sample.right.buttons == (0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)  # padded to 8
    assert parse_message('{"type": "idle", "seq": 0, "t": 5}').kind == "idle"


@pytest.mark.parametrize("text, reason", [
    (message(seq=-1), "seq"),
    (message(seq=1.5), "seq"),
    (message(seq=True), "seq"),
    (message(t="now"), "t must be a number"),
    (message(t=float("inf")).replace("Infinity", "1e400"), "finite"),
    (message().replace('"t": 1700000000000.0', '"t": NaN'), "NaN is not allowed"),
    (message(right={**HAND, "pos": [0.0, 1.0]}), "right.pos"),
    (message(right={**HAND, "pos": [0.0, 1.0, 1e6]}), "outside"),
    (message(right={**HAND, "quat": [0.0, 0.0, 0.0, 0.5]}), "unit quaternion"),
    (message(right={**HAND, "buttons": [0.0] * 9}), "right.buttons"),
    (message(right={**HAND, "buttons": [1.5]}), "outside"),
    (message(right={**HAND, "axes": ["a"]}), "must be a number"),
    (message(right={**HAND, "extra": 1}), "exactly the keys"),
    (message(right=[1, 2]), "object or null"),
    (message(extra=1), "exactly the keys"),
    (message(type="command"), "type must be one of"),
    ("[1, 2]", "JSON object"),
    ("{oops", "not JSON"),
    ("[" * 1000 + "]" * 1000, "nested too deeply"),
    ('{"type": "frame", "seq": 1, "t": 1, "left": null, "right": null, "pad": "' + "x" * MAX_MESSAGE_BYTES + '"}', "longer than"),
])
def test_refused_with_a_reason(text, reason):
    with pytest.raises(SchemaError, match=reason):
        parse_message(text)


def test_binary_is_refused():
    with pytest.raises(SchemaError, match="binary"):
        parse_message(b"{}")
