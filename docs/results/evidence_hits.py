# Usage: python3 docs/results/evidence_hits.py RUN/ARM.eval.json ...
# For each `gr1 eval` output: the share of items whose first box contains
# the centre of the evidence box, and the accuracy of those items and of
# the others (docs/results.md, "Where the gap is").
import json, sys
for f in sys.argv[1:]:
    items = json.load(open(f))['items']
    hit, miss = [], []
    for x in items:
        if not x['boxes']:
            continue
        b, e = x['boxes'][0], x['evidence']
        if isinstance(e[0], list):
            e = e[0]
        cx, cy = (e[0] + e[2]) / 2, (e[1] + e[3]) / 2
        (hit if b[0] <= cx <= b[2] and b[1] <= cy <= b[3] else miss).append(float(x['correct']))
    n = len(hit) + len(miss)
    print(f, 'contains %.3f' % (len(hit) / n), 'acc if so %.3f' % (sum(hit) / len(hit)),
          'acc if not %.3f' % (sum(miss) / len(miss)))
