#!/usr/bin/env python3
"""Writes examples/data/sample.inter: a small, deterministic ratings file in
MovieLens 100k's atomic-file format (RecBole `.inter`), for the README's
quick evaluation and scripts/quickstart-check.sh, which cannot download
MovieLens. Not MovieLens data: 150 users in 4 taste groups rate 1..5 items
of 240 (60 per group, Zipf-popular within a group), mostly from their own
group, which they rate higher; timestamps grow with the row. The generator
is SplitMix64, so the file is the same on every machine and Python version.

Usage: scripts/make-eval-sample.py [path]  (default examples/data/sample.inter)
"""

import sys

MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, bound):
        return self.next() % bound

    def unit(self):
        return (self.next() >> 11) / float(1 << 53)


USERS, GROUPS, ITEMS_PER_GROUP = 150, 4, 60


def zipf_item(rng, group):
    # Inverse-CDF of a Zipf(1) law over the group's items, by rejection-free table.
    weights = [1.0 / (rank + 1) for rank in range(ITEMS_PER_GROUP)]
    total = sum(weights)
    target = rng.unit() * total
    for rank, weight in enumerate(weights):
        target -= weight
        if target <= 0:
            return group * ITEMS_PER_GROUP + rank + 1
    return group * ITEMS_PER_GROUP + ITEMS_PER_GROUP


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "examples/data/sample.inter"
    rng = SplitMix64(20261206)
    rows = []
    for user in range(1, USERS + 1):
        group = rng.below(GROUPS)
        seen = set()
        for _ in range(12 + rng.below(40)):
            own = rng.unit() < 0.8
            item_group = group if own else rng.below(GROUPS)
            item = zipf_item(rng, item_group)
            if item in seen:
                continue
            seen.add(item)
            base = 4 if item_group == group else 2
            rating = max(1, min(5, base + rng.below(3) - 1))
            rows.append((user, item, rating))
    # Interleave users in time, as real logs are: shuffle deterministically.
    for i in range(len(rows) - 1, 0, -1):
        j = rng.below(i + 1)
        rows[i], rows[j] = rows[j], rows[i]
    with open(path, "w", encoding="ascii", newline="\n") as out:
        out.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for n, (user, item, rating) in enumerate(rows):
            out.write(f"{user}\t{item}\t{rating}\t{880000000 + 60 * n}\n")


if __name__ == "__main__":
    main()
