#!/usr/bin/env python3
"""Counts, in gr1 eval outputs, how often the turn after the first crop is a
clean `<think>it shows ...</think><answer>` and what those items score, split
by whether the first box holds the evidence's centre.

Usage: python3 docs/results/same_shape_jitter/clean_turns.py EVAL.json [...]
(full outputs: --compact copies drop the turn texts; gzipped files are read too)."""
import collections
import gzip
import json
import re
import sys

CLEAN = re.compile(r'^<think>it shows [^<]*</think><answer>')


def holds_centre(b, e):
    cx, cy = (e[0] + e[2]) / 2, (e[1] + e[3]) / 2
    return b[0] <= cx <= b[2] and b[1] <= cy <= b[3]


for path in sys.argv[1:]:
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rt') as f:
        items = json.load(f)['items']
    n, right = collections.Counter(), collections.Counter()
    for it in items:
        if not it.get('boxes') or it.get('evidence') is None:
            continue
        texts = it.get('turn_texts') or []
        second = texts[1] if len(texts) > 1 else ''
        key = (holds_centre(it['boxes'][0], it['evidence']), bool(CLEAN.match(second)))
        n[key] += 1
        right[key] += it['correct']
    print(path)
    for on in (True, False):
        for clean in (True, False):
            k = (on, clean)
            if n[k]:
                print('  first box %s the evidence, next turn %s: %d items, accuracy %.3f'
                      % ('on' if on else 'off', 'clean' if clean else 'not clean', n[k], right[k] / n[k]))
