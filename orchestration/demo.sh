#!/usr/bin/env bash
# `make demo`: a local cluster (1 learner + ACTORS actors) trains the demo
# policy from a small pretrained base, then the base and the trained policy
# are evaluated on 100 held-out test questions and shown side by side.
#
#   runs/demo-base.safetensors  the base (built once by gr1 pretrain, reused)
#   runs/demo-test/             100 test questions (gr1 data synth)
#   runs/demo/                  the training run (metrics.jsonl, curves.png,
#                               gallery.png, policy.safetensors) and the
#                               evaluations base.eval.json, trained.eval.json,
#                               trained.gallery.png (eval logs: logs/eval-*.log)
#
# Environment: BUILD [build], GR1_BIN [$BUILD/bin/gr1], ACTORS [2].
set -euo pipefail

cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
BIN=${GR1_BIN:-$BUILD/bin/gr1}
ACTORS=${ACTORS:-2}
CONFIG=configs/demo.yaml
BASE=runs/demo-base.safetensors
TEST=runs/demo-test
RUN=runs/demo

if [ ! -x "$BIN" ]; then
  echo "demo: $BIN not found (run make build, or set BUILD)" >&2
  exit 2
fi

# A base of another vocabulary (e.g. one from before the 32-cell location
# grid) would be refused by every later step: it is rebuilt instead.
if [ -f "$BASE" ]; then
  check_log=$(mktemp)
  if ! "$BIN" report --config "$CONFIG" --checkpoint "$BASE" --locate-only \
      --set pretrain.report_items=1 >/dev/null 2>"$check_log"; then
    if grep -q "vocabulary size" "$check_log"; then
      echo "demo: $BASE does not fit this tokenizer ($(grep -o 'vocabulary size [0-9]*' "$check_log" | head -1)); rebuilding it"
      rm -f "$BASE"
    else
      cat "$check_log" >&2
      rm -f "$check_log"
      exit 2
    fi
  fi
  rm -f "$check_log"
fi
if [ ! -f "$BASE" ]; then
  echo "demo: building a small base policy $BASE (gr1 pretrain, 300 steps);"
  echo "demo: this takes a few minutes, once: later demos reuse it (delete it to rebuild)"
  "$BIN" pretrain --config "$CONFIG" --out "$BASE" --steps 300
fi

echo "demo: writing 100 held-out test questions to $TEST"
"$BIN" data synth --split test --n 100 --out "$TEST" --config "$CONFIG"

echo "demo: training from $BASE with $ACTORS actors"
"$BIN" launch --config "$CONFIG" --actors "$ACTORS" --run-dir "$RUN" \
  --set "learner.init_checkpoint=$BASE"

# quiet NAME CMD...: runs CMD with its output in $RUN/logs/NAME.log; on
# failure prints the log's tail and stops.
quiet() {
  local log="$RUN/logs/$1.log"
  shift
  mkdir -p "$RUN/logs"
  if ! "$@" >"$log" 2>&1; then
    echo "demo: failed: $*; last lines of $log:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
}

echo "demo: evaluating the base and the trained policy on $TEST (logs in $RUN/logs/eval-*.log)"
quiet eval-base "$BIN" eval --checkpoint "$BASE" --data "$TEST" --config "$CONFIG" \
  --out "$RUN/base.eval.json"
quiet eval-trained "$BIN" eval --checkpoint "$RUN/policy.safetensors" --data "$TEST" \
  --config "$CONFIG" --out "$RUN/trained.eval.json" --gallery "$RUN/trained.gallery.png"

echo
echo "demo: curves $RUN/curves.png, trajectories $RUN/gallery.png and $RUN/trained.gallery.png"
"$BIN" results compare --base "$RUN/base.eval.json" --trained "$RUN/trained.eval.json"
