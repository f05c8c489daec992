#!/usr/bin/env python3
"""Rows of docs/results.md's seed tables: one evaluation (and its run's metrics) per row.

usage: rows.py BASE.eval.json NAME=EVAL.json[:METRICS.jsonl] ...

Per row: test accuracy, format, box_score_given, first box on the evidence,
right->wrong / wrong->right against BASE with the exact McNemar p, and the
sampled accuracy reward (accuracy_reward_mean) of the run's first and last
ten learner steps when METRICS is given. Eval files are `gr1 eval` outputs
or their compact copies (paired.py --compact).
"""
import json, os, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from paired import mcnemar  # docs/results/paired.py


def load(path):
    d = json.load(open(path))
    return d["summary"], {it["problem_id"]: it["correct"] for it in d["items"]}


def main(argv):
    _, base = load(argv[0])
    print("| run | accuracy | format | box_score_given | first box on the evidence | vs base: right->wrong / wrong->right, p | sampled accuracy reward, steps 1-10 / last 10 |")
    print("|---|---|---|---|---|---|---|")
    for arg in argv[1:]:
        name, rest = arg.split("=", 1)
        ev, _, met = rest.partition(":")
        s, items = load(ev)
        rw = sum(1 for k, v in base.items() if v == 1 and items[k] != 1)
        wr = sum(1 for k, v in base.items() if v != 1 and items[k] == 1)
        bsg = s.get("box_score_given")
        boe = s.get("box_on_evidence_rate")
        reward = ""
        if met:
            r = [json.loads(l)["accuracy_reward_mean"] for l in open(met) if l.strip()]
            reward = f"{sum(r[:10]) / 10:.3f} / {sum(r[-10:]) / 10:.3f}"
        f = lambda x: "n/a" if x is None else f"{x:.3f}"
        print(f"| {name} | {s['accuracy']:.3f} | {s['format_rate']:.3f} | {f(bsg) if s['mode'] == 'grounded' else 'n/a'} | "
              f"{f(boe) if s['mode'] == 'grounded' else 'n/a'} | {rw} / {wr}, {mcnemar(rw, wr):.2f} | {reward} |")


if __name__ == "__main__":
    main(sys.argv[1:])
