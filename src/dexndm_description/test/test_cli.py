"""`dexndm-sim info | render | bench` through the real entry point."""
import json

import numpy as np
import pytest

from dexndm_description import cli, hand
from dexndm_description.render import RenderUnavailable, ensure_gl


def test_info_prints_the_joint_table_and_fingertips(capsys):
    assert cli.main(["info"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [j["name"] for j in data["joints"]] == list(hand.JOINT_NAMES)
    assert [j["lower_rad"] for j in data["joints"]] == list(hand.LOWER)
    assert data["joints"][0]["mjcf_chain_index"] == 1  # if_abd sits after if_mcp in the chain
    tips = np.array(list(data["fingertips_at_zero_palm_frame_m"].values()))
    assert tips.shape == (4, 3) and tips[0, 0] > 0.1
    assert data["worlds"]["target"]["actuation"] == "servo" and data["worlds"]["source"]["delay_substeps"] == 0


def test_bench_ends_with_one_key_value_line(capsys):
    assert cli.main(["bench", "--envs", "2", "--ticks", "1", "--repeats", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    pairs = dict(kv.split("=") for kv in last.split())
    assert list(pairs) == ["source_steps_per_s", "target_steps_per_s", "overhead_ratio"]
    assert all(float(v) > 0 for v in pairs.values())


def test_bad_arguments_exit_with_a_message(capsys):
    assert cli.main(["bench", "--envs", "0"]) == 2
    assert "num_envs" in capsys.readouterr().err


def test_render_writes_a_picture(tmp_path):
    try:
        ensure_gl()
    except RenderUnavailable as exc:
        pytest.skip(f"no offscreen GL here: {exc}")
    from PIL import Image

    out = tmp_path / "hand.png"
    assert cli.main(["render", "--object", "normal_cuboid", "--ticks", "2", "--width", "96", "--height", "72",
                     "--out", str(out)]) == 0
    image = np.asarray(Image.open(out))
    assert image.shape == (72, 96, 3)
    assert image.std() > 10  # a scene, not a blank frame


def test_xml_prints_a_model_mujoco_loads(capsys):
    import mujoco

    assert cli.main(["xml", "--world", "target", "--object", "irregular", "--wrist", "base_up"]) == 0
    model = mujoco.MjModel.from_xml_string(capsys.readouterr().out)
    assert model.nu == 16 and model.actuator(0).name == "if_abd" and model.mesh("object_mesh") is not None
