#!/usr/bin/env bash
# The README's second command: install missing system packages, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The Gymnasium bridge and parity tests need gymnasium, mujoco and imageio from PyPI, the TensorBoard readback
# test tensorboard, the wire client test lz4 (pinned in
# scripts/requirements-test.txt); without them those tests skip with a message. CI must run them.
if ! python3 -c "import gymnasium, mujoco, imageio, tensorboard, lz4" 2>/dev/null; then
  echo "test: installing the Python test packages (scripts/requirements-test.txt)"
  if ! python3 -m pip install -q -r scripts/requirements-test.txt; then
    [ "${CI:-}" = true ] && { echo "test: could not install the Python test packages" >&2; exit 1; }
    echo "test: warning: Python test packages unavailable; the Gymnasium tests will skip" >&2
  fi
fi
swift build --build-tests
swift test --skip-build "$@"
