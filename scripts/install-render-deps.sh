#!/usr/bin/env bash
# Debian packages for offscreen MuJoCo rendering (`dexndm-sim render`, docs pictures): EGL and OSMesa.
# Only rendering needs them; simulation, training and the tests that do not render run without.
set -euo pipefail
PKGS=(libegl1 libgl1 libgl1-mesa-dri libosmesa6)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -eq 0 ]; then echo "[render-deps] all present: ${PKGS[*]}"; exit 0; fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "[render-deps] installing ${missing[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
