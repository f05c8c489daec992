#!/bin/bash
# The kernel probes of docs/results.md, "Kernels". Run from the repository
# root with a gr1 binary (GR1, default build/bin/gr1); extra arguments are
# environment settings (NAME=VALUE) for that run.
#   probe.sh short NAME [ENV...]  100 vision steps + 40 decoder steps of the
#                                 whole mix: prints the checkpoint's sha256
#                                 and the logged losses
#   probe.sh phase0 NAME [ENV...] 50 text-only phase-0 steps (no image, so no
#                                 convolution): prints the step-50 loss to
#                                 full precision (the report's log)
#   probe.sh vision NAME [ENV...] the 3000-step vision stage: prints its final
#                                 loss to full precision
set -u
what=$1 name=$2
shift 2
GR1=${GR1:-build/bin/gr1}
d=/tmp/gr1_kernel_probe/$what/$name
rm -rf "$d" && mkdir -p "$d"
common=(--config configs/results.yaml --out "$d/base.safetensors" --run-dir "$d/run"
        --set pretrain.phase1_steps=0 --set pretrain.final_steps=0 --set pretrain.log_every=50)
case $what in
  short)
    env "$@" "$GR1" pretrain "${common[@]}" --set pretrain.vision_steps=100 --set pretrain.phase0_steps=0 \
      --set pretrain.steps=40 --set pretrain.log_every=10 --set pretrain.report_items=10 \
      --set pretrain.warmup_steps=5 >"$d/log" 2>&1
    echo "$name $(sha256sum "$d/base.safetensors" | cut -c1-16)"
    grep -E "vision step +100 |pretrain step +(10|40) " "$d/log" ;;
  phase0)
    env "$@" "$GR1" pretrain "${common[@]}" --set pretrain.vision_steps=0 --set pretrain.phase0_steps=50 \
      --set pretrain.steps=51 --set pretrain.report_items=2 >"$d/log" 2>&1
    python3 -c "import json,sys; print(sys.argv[1], repr(json.load(open(sys.argv[2]))['log'][0]['loss']))" \
      "$name" "$d/base.safetensors.report.json" ;;
  vision)
    env "$@" "$GR1" pretrain "${common[@]}" --set pretrain.phase0_steps=0 --set pretrain.steps=2 \
      --set pretrain.report_items=2 >"$d/log" 2>&1
    python3 -c "import json,sys; v=json.load(open(sys.argv[2]))['vision']; print(sys.argv[1], repr(v['final_loss']), v['seconds'])" \
      "$name" "$d/base.safetensors.report.json" ;;
  *) echo "probe.sh: unknown probe $what (short, phase0, vision)" >&2; exit 2 ;;
esac
