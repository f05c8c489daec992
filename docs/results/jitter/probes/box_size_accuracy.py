#!/usr/bin/env python3
"""Sampled accuracy by first-box size (docs/results.md, "Jittered read crops
in the final phase").

usage: box_size_accuracy.py SAMPLES.json [...]   (a full `gr1 eval --samples K` output)

Over the open, non-spatial questions (no `_mc`, no `spatial`) and the sampled
trajectories of exactly two turns whose first box is valid and holds the
whole evidence box, prints accuracy by floor(log2(box area / evidence area))
(6 = 64 times or more). Boxes are in the 64-pixel shown frame; the evidence in
the 256-pixel original.
"""
import collections, json, math, re, sys

G = re.compile(r'^<think>[^<]*</think>\s*<box>\[(\d+),(\d+),(\d+),(\d+)\]</box>$')
for f in sys.argv[1:]:
    bins = collections.defaultdict(lambda: [0, 0.0])
    for it in json.load(open(f))['items']:
        ds = it['dataset']
        if ds.endswith('_mc') or 'spatial' in ds:
            continue
        e = it['evidence']
        ea = (e[2] - e[0]) * (e[3] - e[1])
        for s in it['sampled']:
            t = s['turn_texts']
            m = G.match(t[0]) if len(t) == 2 else None
            if not m:
                continue
            b = [float(v) * 4 for v in m.groups()]
            if b[2] <= b[0] or b[3] <= b[1]:
                continue
            if not (b[0] <= e[0] and b[1] <= e[1] and b[2] >= e[2] and b[3] >= e[3]):
                continue
            k = min(6, int(math.log2((b[2] - b[0]) * (b[3] - b[1]) / ea)))
            bins[k][0] += 1
            bins[k][1] += s['correct']
    print(f, ' '.join('%d: n=%d acc=%.2f' % (k, n, c / n) for k, (n, c) in sorted(bins.items())))
