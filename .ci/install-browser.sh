#!/usr/bin/env bash
# Installs Debian's Chromium (/usr/bin/chromium) for the browser test of the Dagster UI
# (edugraph_pipeline_tests/ui). Playwright's Python package drives it through `executable_path`;
# `playwright install` is never used (it downloads browsers from the internet).
# Idempotent: returns at once when Chromium is already there. Needs root (or sudo) and apt.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: no apt-get here; the browser test will skip" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
test -x /usr/bin/chromium
echo "install-browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium installed)"
