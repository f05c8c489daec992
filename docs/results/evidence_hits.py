# Usage: python3 docs/results/evidence_hits.py RUN/ARM.eval.json ...
# For each `gr1 eval` output: among items with evidence and a box, the share
# whose last box (the scored one) contains the centre of the evidence box,
# and the accuracy of those items and of the others (docs/results.md,
# "Where the gap is"). `gr1 eval` summaries written since this script have
# the same figures as box_on_evidence_rate, accuracy_box_on_evidence and
# accuracy_box_off_evidence.
import json, sys
for f in sys.argv[1:]:
    items = json.load(open(f))['items']
    hit, miss = [], []
    for x in items:
        if not x['boxes'] or not x['evidence']:
            continue
        b, e = x['boxes'][-1], x['evidence']
        if isinstance(e[0], list):
            e = e[0]
        cx, cy = (e[0] + e[2]) / 2, (e[1] + e[3]) / 2
        (hit if b[0] <= cx <= b[2] and b[1] <= cy <= b[3] else miss).append(float(x['correct']))
    n = len(hit) + len(miss)
    print(f, 'contains %.3f' % (len(hit) / n), 'acc if so %.3f' % (sum(hit) / len(hit)),
          'acc if not %.3f' % (sum(miss) / len(miss)))
