#!/usr/bin/env bash
# Tools of the browser tests (teleop page, rerun web viewer) and the native viewer's test, idempotently:
# Chromium, Xvfb and Mesa's lavapipe from Debian (apt-get only when missing) and the npm packages of the
# teleop tests (IWER), from the committed package-lock.json.
# Called by scripts/setup.sh --test. Never downloads a browser through npm.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '[setup-test-tools] %s\n' "$*"; }
# apt_install WHY PACKAGE...: install Debian packages (sudo unless root), or say what to install by hand.
apt_install() {
  local why="$1"; shift
  command -v apt-get >/dev/null || { echo "setup-test-tools.sh: $why and there is no apt-get; install Debian's $*" >&2; exit 1; }
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  say "installing $* (Debian packages)"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$@"
}

if [ -x /usr/bin/chromium ]; then
  say "chromium present: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
else
  apt_install "/usr/bin/chromium is missing" chromium
fi

# The native viewer's test (viz:=window): a virtual display and a software Vulkan driver (no GPU).
if [ -x /usr/bin/Xvfb ] && [ -x /usr/bin/xwininfo ] && ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1; then
  say "Xvfb, xwininfo and lavapipe present"
else
  apt_install "Xvfb, xwininfo or Mesa's lavapipe is missing" xvfb x11-utils mesa-vulkan-drivers
fi

WEB="$ROOT/src/dexndm_teleop/test/web"
command -v npm >/dev/null || { echo "setup-test-tools.sh: npm is missing; install Node.js 18+ (Debian: nodejs npm)" >&2; exit 1; }
STAMP="$WEB/node_modules/.dexndm-lock.sha256"
WANT="$(sha256sum "$WEB/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ] && [ -f "$WEB/node_modules/iwer/build/iwer.min.js" ]; then
  say "npm test packages up to date"
else
  say "npm ci in $WEB"
  (cd "$WEB" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  echo "$WANT" > "$STAMP"
fi
