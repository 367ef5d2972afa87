"""Object sets (sizes, aspect ratios, disjoint test shapes, randomization) and the Chaos Box scene."""
import numpy as np
import pytest

from dexndm_description import objects
from dexndm_description.sim import BatchedHandSim

# (smallest side range m, aspect range) = min extent x scale, from LEAP_HAND.md
EXPECTED = {
    "normal_cylinder": ((0.04 * 0.70, 0.04 * 0.86), (1.6, 2.4)),
    "normal_cuboid": ((0.064 * 0.70, 0.064 * 0.86), (1.25, 1.5)),
    "long_cuboid": ((0.06 * 0.5, 0.08 * 0.5), (2.5, 6.67)),
    "small_cylinder": ((0.025 * 0.5, 0.025 * 0.6), (1.92, 2.56)),
    "irregular": ((0.056 * 0.6, 0.115 * 0.7), (1.05, 2.0)),
    "test_irregular": ((0.056 * 0.6, 0.115 * 0.7), (1.05, 2.0)),
}


@pytest.mark.parametrize("name", objects.OBJECT_SETS)
def test_sizes_and_aspect_ratios_follow_the_paper(name):
    rng = np.random.default_rng(0)
    (lo, hi), (alo, ahi) = EXPECTED[name]
    for _ in range(40):
        spec = objects.sample_shape(name, rng)
        assert lo - 1e-9 <= spec.extents.min() <= hi + 1e-9
        assert alo - 1e-6 <= spec.aspect <= ahi + 1e-6
        assert np.argmax(spec.extents) == 1  # long axis along object y
        if spec.vertices is not None:
            np.testing.assert_allclose(spec.vertices.max(0) - spec.vertices.min(0), spec.extents, rtol=1e-9)


def test_test_shapes_are_26_fixed_shapes_disjoint_from_training():
    rng = np.random.default_rng(1)
    test_shapes = {objects.sample_shape("test_irregular", rng, test_index=k).shape_id for k in range(26)}
    assert len(test_shapes) == 26
    again = objects.sample_shape("test_irregular", np.random.default_rng(99), test_index=3)
    np.testing.assert_array_equal(again.vertices, objects.sample_shape("test_irregular", rng, test_index=3).vertices)
    train = [objects.sample_shape("irregular", rng) for _ in range(200)]
    assert all(s.shape_id.startswith("train:") for s in train)
    assert not test_shapes & {s.shape_id for s in train}
    with pytest.raises(ValueError, match="0..25"):
        objects.sample_shape("test_irregular", rng, test_index=26)


def test_physics_randomization_ranges():
    rng = np.random.default_rng(2)
    spec = objects.sample_shape("normal_cuboid", rng)
    masses, frictions = [], []
    for _ in range(300):
        objects.randomize_physics(spec, rng)
        masses.append(spec.mass)
        frictions.append(spec.friction)
        assert np.all(np.abs(spec.com) <= np.minimum(0.1 * spec.extents, 0.01) + 1e-12)
    assert 0.01 <= min(masses) < 0.013 and 0.047 < max(masses) <= 0.05
    assert 0.3 <= min(frictions) < 0.4 and 2.9 < max(frictions) <= 3.0


def test_reset_redraws_object_physics_into_the_model():
    sim = BatchedHandSim(num_envs=2, object="long_cuboid", seed=4, threads=1)
    try:
        m = sim.models[0]
        body, geom = m.body("object").id, m.geom("object").id
        first = (m.body_mass[body], m.geom_friction[geom, 0])
        assert first[0] == pytest.approx(sim.object_specs[0].mass)
        sim.reset(env_ids=[0])
        second = (m.body_mass[body], m.geom_friction[geom, 0])
        assert second != first and 0.01 <= second[0] <= 0.05 and 0.3 <= second[1] <= 3.0
        np.testing.assert_allclose(m.body_ipos[body], sim.object_specs[0].com)
    finally:
        sim.close()


@pytest.mark.parametrize("wrist", ["base_up", "palm_down", "thumb_up"])
def test_chaos_box_balls_load_the_fingers(wrist):
    sim = BatchedHandSim(num_envs=1, scene="chaos_box", wrist=wrist, object=None, threads=1)
    try:
        m, d = sim.models[0], sim.datas[0]
        balls = [b for b in range(m.nbody) if m.body(b).name.startswith("ball_")]
        assert 50 <= len(balls) <= 150
        assert np.all(m.body_mass[balls] < 0.01)
        hand_bodies = set(range(m.body("palm").id, m.body("th_ds").id + 1))
        loads = []
        rng = np.random.default_rng(0)
        for _ in range(10):
            sim.set_targets(sim.q + rng.normal(0, 0.2, size=16))
            sim.step()
            touching = [c for c in d.contact[:d.ncon]
                        if (m.geom_bodyid[c.geom1] in hand_bodies) != (m.geom_bodyid[c.geom2] in hand_bodies)
                        and {m.body(m.geom_bodyid[c.geom1]).name[:5], m.body(m.geom_bodyid[c.geom2]).name[:5]} & {"ball_"}]
            loads.append(len(touching))
        assert min(loads) >= 3  # balls press on the fingers at every tick
        assert np.all(np.abs(sim.q) < 3.2) and np.all(np.isfinite(sim.q))
    finally:
        sim.close()
