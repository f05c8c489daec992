#!/bin/bash
# usage: samp.sh NAME CKPT [--set ...]: greedy eval of 500 + sampled eval (150 x 8)
n=$1; ck=$2; shift 2
cd /work/main; export GR1_KERNELS=portable
/tmp/gr1n2/gr1 eval --checkpoint $ck --data /tmp/test500 --mode grounded --config configs/results.yaml --out /tmp/rel/$n.eval.json --threads 2 "$@" > /tmp/rel/$n.eval.log 2>&1
/tmp/gr1n2/gr1 eval --checkpoint $ck --data /tmp/test500 --mode grounded --limit 150 --samples 8 --config configs/results.yaml --out /tmp/rel/$n.samp.json --threads 2 "$@" > /tmp/rel/$n.samp.log 2>&1
echo done $n
