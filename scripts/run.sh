#!/usr/bin/env bash
# The README's first command: install missing system packages, build in release mode, and run the
# embedded default (Pendulum swing-up: pre-training, then DPPO with one learner and two actors).
# Extra arguments go to cluster/launch.sh, e.g. scripts/run.sh --set train.n_train_itr=10
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product dppo
exec cluster/launch.sh configs/pendulum/finetune.yaml "$@"
