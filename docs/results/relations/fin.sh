#!/bin/bash
# usage: fin.sh ARM FROM STEPS SKILLS [--set ...]: final-phase-like steps (jittered crops) from FROM, then test eval
a=$1; from=$2; n=$3; sk=$4; shift 4
cd /work/main
export GR1_KERNELS=portable
mkdir -p /tmp/rel/$a
/tmp/gr1n2/gr1 pretrain --config configs/results.yaml --out /tmp/rel/$a/base.safetensors \
  --set learner.init_checkpoint=$from --set pretrain.vision_steps=0 \
  --set pretrain.steps=$n --set pretrain.phase0_steps=0 --set pretrain.phase1_steps=0 \
  --set pretrain.final_steps=0 --set pretrain.locate_curve_every=0 --set pretrain.reset_optimizer_after_phase0=false \
  --set pretrain.crop_jitter_final_only=false \
  --set pretrain.skills=$sk --set pretrain.lr=3e-4 --set pretrain.warmup_steps=20 \
  --set run.run_dir=/tmp/rel/$a/run "$@" > /tmp/rel/$a/pretrain.log 2>&1 || { echo FAIL; exit 1; }
/tmp/gr1n2/gr1 eval --checkpoint /tmp/rel/$a/base.safetensors --data /tmp/test500 --mode grounded \
  --config configs/results.yaml --out /tmp/rel/$a/eval.json --threads 2 > /tmp/rel/$a/eval.log 2>&1
echo done
