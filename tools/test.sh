#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test suite verbosely, so
# Check's "100%: Checks: N, Failures: 0, Errors: 0" lines reach the log.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh
meson test -C build -v --print-errorlogs "$@"
