#!/usr/bin/env bash
# The full Hopper pipeline, one stage per command (README, "The Hopper pipeline"):
#   1. expert:   Gaussian-policy PPO from scratch on the cluster            (configs/hopper/expert.yaml)
#   2. medium:   a dataset from a partly trained expert checkpoint, sampled stochastically (as D4RL's medium data)
#   3. pretrain: behaviour cloning of the diffusion policy on that dataset  (configs/hopper/finetune.yaml)
#   4. dppo:     DPPO fine-tuning of the pretrained policy on the cluster   (configs/hopper/finetune.yaml)
# Everything goes under $RUN (default runs/hopper-pipeline). MEDIUM_ITR picks the expert checkpoint of stage 2.
#   scripts/hopper_pipeline.sh [--from STAGE]
set -euo pipefail
# The body is one compound command, so bash reads all of it before running: editing this file while a
# run is going cannot change (or break) that run.
{
cd "$(dirname "$0")/.."
run=${RUN:-runs/hopper-pipeline}
medium_itr=${MEDIUM_ITR:-50}
from=expert
[ "${1:-}" = "--from" ] && from=$2
scripts/install-deps.sh
swift build -c release --product dppo
bin=.build/release/dppo
stages=(expert medium pretrain dppo)
started=false
for stage in "${stages[@]}"; do
  [ "$stage" = "$from" ] && started=true
  $started || continue
  echo "== hopper pipeline: $stage"
  case $stage in
    expert) cluster/launch.sh configs/hopper/expert.yaml --run-dir "$run/expert" ;;
    medium) "$bin" collect --config configs/hopper/expert.yaml --checkpoint "$run/expert/checkpoints/itr-$medium_itr.safetensors" \
              --episodes 300 --stochastic --output "$run/hopper-medium.safetensors" ;;
    pretrain) "$bin" pretrain --config configs/hopper/finetune.yaml --set "pretrain.dataset=$run/hopper-medium.safetensors" \
                --output "$run/pretrain" ;;
    dppo) cluster/launch.sh configs/hopper/finetune.yaml --set "pretrain.checkpoint=$run/pretrain/pretrained.safetensors" \
            --run-dir "$run/dppo" ;;
  esac
done
exit
}
