import numpy as np
import pytest

from dexndm_description import axes, wrist


def test_general_axes_are_26_unit_vectors_none_principal():
    g = axes.general_axes()
    assert g.shape == (26, 3)
    np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1.0, atol=1e-12)
    principal = np.stack(list(axes.PRINCIPAL.values()))
    cos_to_principal = np.abs(g @ principal.T)
    assert cos_to_principal.max() < np.cos(np.radians(25))


def test_general_axes_are_well_separated_with_the_principal_ones():
    everyone = np.concatenate([np.stack(list(axes.PRINCIPAL.values())), axes.general_axes()])
    angles = np.degrees(np.arccos(np.clip(everyone @ everyone.T, -1, 1)))
    np.fill_diagonal(angles, 180)
    nearest = angles.min(axis=1)
    # 32 evenly spread points: nearest-neighbour angles close to each other (~33-37 deg).
    assert nearest.min() > 30
    assert nearest.max() - nearest.min() < 6


def test_general_axes_are_deterministic():
    first = axes.general_axes()
    axes.general_axes.cache_clear()
    np.testing.assert_array_equal(first, axes.general_axes())


def test_named_axes_cover_all_forms():
    table = axes.named_axes()
    assert len(table) == 6 + 26 + 4
    np.testing.assert_allclose(table["(1,1,1)"], np.ones(3) / np.sqrt(3))
    np.testing.assert_allclose(table["-y"], [0, -1, 0])


@pytest.mark.parametrize(
    "spec, expected",
    [("z", [0, 0, 1]), ("+x", [1, 0, 0]), ("-Z", [0, 0, -1]), (" (1, 0, 1) ", [0.70710678, 0, 0.70710678]),
     ("0,0,2", [0, 0, 1]), ("[0 3 4]", [0, 0.6, 0.8]), ((0, 0, -5), [0, 0, -1])],
)
def test_parse_axis_accepts_names_and_vectors(spec, expected):
    np.testing.assert_allclose(axes.parse_axis(spec), expected, atol=1e-8)


def test_parse_axis_general_names():
    np.testing.assert_array_equal(axes.parse_axis("general:3"), axes.general_axes()[3])


@pytest.mark.parametrize("spec", ["w", "general:26", "1,2", "0,0,0", "nan,0,1", (1, 2), (np.inf, 0, 0), ""])
def test_parse_axis_refuses_bad_input_with_a_clear_error(spec):
    with pytest.raises(ValueError, match="axis"):
        axes.parse_axis(spec)


def test_wrist_orientations_are_unit_quaternions_and_point_the_palm_right():
    assert set(wrist.WRIST_ORIENTATIONS) == {"palm_up", "palm_down", "base_up", "base_down", "thumb_up", "thumb_down"}
    up = np.array([0.0, 0.0, 1.0])
    palm_normal = np.array([0.0, 0.0, -1.0])  # in the palm frame
    fingers, thumb = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    world = {name: wrist.quat_to_matrix(q) for name, q in wrist.WRIST_ORIENTATIONS.items()}
    for q in wrist.WRIST_ORIENTATIONS.values():
        assert np.linalg.norm(q) == pytest.approx(1.0)
    assert world["palm_up"] @ palm_normal == pytest.approx(up)
    assert world["palm_down"] @ palm_normal == pytest.approx(-up)
    assert world["base_up"] @ fingers == pytest.approx(-up)
    assert world["base_down"] @ fingers == pytest.approx(up)
    assert world["thumb_up"] @ thumb == pytest.approx(up)
    assert world["thumb_down"] @ thumb == pytest.approx(-up)


def test_gravity_in_palm_frame():
    np.testing.assert_allclose(wrist.gravity_in_palm(wrist.WRIST_ORIENTATIONS["palm_up"]), [0, 0, 1], atol=1e-12)


def test_parse_wrist():
    np.testing.assert_allclose(wrist.parse_wrist("thumb_up"), wrist.WRIST_ORIENTATIONS["thumb_up"])
    np.testing.assert_allclose(wrist.parse_wrist("0,0,0,2"), [0, 0, 0, 1])
    for bad in ("sideways", "1,2,3", "0,0,0,0", "nan,0,0,1"):
        with pytest.raises(ValueError):
            wrist.parse_wrist(bad)
