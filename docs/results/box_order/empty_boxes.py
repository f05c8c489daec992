"""Share of sampled trajectories (gr1 eval --samples K) whose FIRST turn wrote
a box with x2 <= x1 or y2 <= y1 (an empty box), and of all their turns.
usage: python3 docs/results/box_order/empty_boxes.py SAMP.json..."""
import json, re, sys

BOX = re.compile(r'<box>\s*\[([^\]]*)\]')

def empty(text):
    m = BOX.search(text)
    if not m:
        return None
    try:
        v = [float(a) for a in m.group(1).split(',')]
    except ValueError:
        return None
    return len(v) == 4 and (v[2] <= v[0] or v[3] <= v[1])

for path in sys.argv[1:]:
    d = json.load(open(path))
    first = boxes = first_empty = turns_empty = turns_boxed = 0
    for item in d['items']:
        for s in item.get('sampled', []):
            tt = s.get('turn_texts') or []
            if not tt:
                continue
            first += 1
            e = empty(tt[0])
            boxes += e is not None
            first_empty += bool(e)
            for t in tt:
                e = empty(t)
                turns_boxed += e is not None
                turns_empty += bool(e)
    print(f'{path}: sampled trajectories {first}, first turn boxed {boxes}, '
          f'first box empty {first_empty} ({first_empty / max(1, first):.3f}); '
          f'turns with a box {turns_boxed}, empty {turns_empty}')
