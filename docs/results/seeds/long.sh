#!/bin/bash
# after the seeds: the table's Ground-R1 arm for 240 steps (checkpoints every 80), each checkpoint evaluated
while ! grep -q ALLDONE /tmp/seeds/status 2>/dev/null; do sleep 20; done
cd /work/main
export GR1_KERNELS=portable
B=runs/cache/base-341adee574d141ec.safetensors
n=ground_r1_240; t0=$(date +%s)
/tmp/gr1n2/gr1 launch --config configs/results.yaml --actors 2 --run-dir /tmp/seeds/$n \
  --set learner.init_checkpoint=$B --set learner.steps=240 --set learner.checkpoint_every=80 > /tmp/seeds/$n.launch.log 2>&1 || echo "launch failed $n" >> /tmp/seeds/status
echo "$n rl $(( $(date +%s)-t0 )) s" >> /tmp/seeds/status
ls /tmp/seeds/$n >> /tmp/seeds/status
for c in /tmp/seeds/$n/checkpoints/step_000080.safetensors /tmp/seeds/$n/checkpoints/step_000160.safetensors /tmp/seeds/$n/policy.safetensors; do
  bn=$(basename $c .safetensors)
  /tmp/gr1n2/gr1 eval --checkpoint $c --data /tmp/test500 --mode grounded \
    --config configs/results.yaml --out /tmp/seeds/${n}_$bn.eval.json --threads 2 > /tmp/seeds/${n}_$bn.eval.log 2>&1
  echo "eval $bn rc $?" >> /tmp/seeds/status
done
echo LONGDONE >> /tmp/seeds/status
