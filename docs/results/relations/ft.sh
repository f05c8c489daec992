#!/bin/bash
# usage: ft.sh ARM STEPS SKILLS LR [--set k=v ...]   (from the table's base, 2 processes)
a=$1; n=$2; sk=$3; lr=$4; shift 4
cd /work/main
export GR1_KERNELS=portable
B=${BASE:-runs/cache/base-b7e14f86aa482d11.safetensors}
mkdir -p /tmp/rel/$a
/tmp/gr1n2/gr1 pretrain --config configs/results.yaml --out /tmp/rel/$a/base.safetensors \
  --set learner.init_checkpoint=$B --set pretrain.vision_steps=0 \
  --set pretrain.steps=$n --set pretrain.phase0_steps=0 --set pretrain.phase1_steps=0 \
  --set pretrain.final_steps=0 --set pretrain.locate_curve_every=0 --set pretrain.reset_optimizer_after_phase0=false \
  --set pretrain.crop_jitter_final_only=false --set pretrain.crop_jitter_share=0 \
  --set pretrain.skills=$sk --set pretrain.lr=$lr --set pretrain.warmup_steps=20 --set pretrain.log_every=50 \
  --set run.run_dir=/tmp/rel/$a/run "$@" > /tmp/rel/$a/pretrain.log 2>&1 || { echo FAIL; exit 1; }
echo done
