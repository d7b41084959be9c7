#!/usr/bin/env bash
# The main job: install what is missing, build, and train the seed MLP on
# Fashion-MNIST with the default settings. Extra arguments go to `tandem train`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh
exec build/tools/tandem train "$@"
