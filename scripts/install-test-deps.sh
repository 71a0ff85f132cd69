#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain: headless Chromium for the
# dashboard test (tests/e2e/dashboard.rs). Debian/Ubuntu, run as root (CI) or with sudo.
set -euo pipefail
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q chromium >/dev/null \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null; }
command -v chromium >/dev/null
