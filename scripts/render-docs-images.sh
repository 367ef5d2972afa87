#!/usr/bin/env bash
# Re-render the pictures in docs/images/ that docs/SIM.md links. Installs the EGL/OSMesa Debian
# packages first when missing (scripts/install-render-deps.sh). Run from anywhere after `. env.sh`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/docs/images"
"$ROOT/scripts/install-render-deps.sh"
mkdir -p "$OUT"
for obj in normal_cylinder normal_cuboid long_cuboid small_cylinder irregular test_irregular; do
  dexndm-sim render --object "$obj" --randomize --seed 3 --ticks 20 --width 320 --height 240 \
    --azimuth 150 --elevation -35 --distance 0.35 --out "$OUT/grasp_$obj.png"
done
dexndm-sim render --object normal_cuboid --wrist palm_down --randomize --seed 3 --ticks 20 --width 320 --height 240 \
  --azimuth 150 --elevation 20 --distance 0.35 --out "$OUT/grasp_normal_cuboid_palm_down.png"
for w in palm_down base_up thumb_down; do
  dexndm-sim render --scene chaos_box --object none --wrist "$w" --ticks 20 --width 320 --height 240 \
    --elevation -35 --distance 0.6 --out "$OUT/chaos_box_$w.png"
done
python -m dexndm_description.plots step-response "$OUT/step_response.png"
