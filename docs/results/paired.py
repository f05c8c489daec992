#!/usr/bin/env python3
"""Paired comparison of evaluations on the same questions (docs/results.md).

usage: paired.py BASE.json OTHER.json [OTHER.json ...]

Each file is a `gr1 eval` output (items[] with problem_id, correct, boxes) or
the compact copy that `paired.py --compact IN OUT` writes (the same fields).
Prints, per OTHER: accuracy, format, box_score_given from its summary; the
items the base got right (correct == 1) and OTHER wrong, and the reverse;
the exact two-sided McNemar p of those two counts; and on how many items the
first box differs from the base's.
"""
import json, math, sys


def load(path):
    d = json.load(open(path))
    return d["summary"], {it["problem_id"]: it for it in d["items"]}


def mcnemar(b, c):
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def main(argv):
    if len(argv) == 3 and argv[0] == "--compact":
        d = json.load(open(argv[1]))
        keep = ("problem_id", "dataset", "correct", "boxes", "box_score", "answer")
        items = [{k: it.get(k) for k in keep} for it in d["items"]]
        json.dump({"summary": d["summary"], "items": items}, open(argv[2], "w"), separators=(",", ":"))
        return 0
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    _, base = load(argv[0])
    for path in argv[1:]:
        s, other = load(path)
        ids = [i for i in base if i in other]
        if len(ids) != len(base):
            print(f"{path}: {len(base) - len(ids)} of the base's items are missing", file=sys.stderr)
            return 1
        rw = sum(1 for i in ids if base[i]["correct"] >= 1 and other[i]["correct"] < 1)
        wr = sum(1 for i in ids if base[i]["correct"] < 1 and other[i]["correct"] >= 1)
        moved = sum(1 for i in ids if base[i]["boxes"][:1] != other[i]["boxes"][:1])
        given = s.get("box_score_given")  # None where no item emitted a box (direct mode)
        given = "n/a" if given is None else f"{given:.3f}"
        print(f"{path}: n {len(ids)} accuracy {s['accuracy']:.3f} format {s['format_rate']:.3f} "
              f"box_score_given {given} right->wrong {rw} "
              f"wrong->right {wr} McNemar p {mcnemar(rw, wr):.3f} first box moved {moved}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
