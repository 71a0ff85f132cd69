#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain: headless Chromium for the
# dashboard test (tests/e2e/dashboard.rs) and curl, the HTTPS client of tests/e2e/tls.rs.
# Debian/Ubuntu, run as root (CI) or with sudo.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
apt_install() {
    $SUDO apt-get install -y -q "$@" >/dev/null \
        || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "$@" >/dev/null; }
}
command -v curl >/dev/null || apt_install curl
command -v curl >/dev/null
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
    exit 0
fi
apt_install chromium
command -v chromium >/dev/null
