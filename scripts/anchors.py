#!/usr/bin/env python3
"""The issue-16 anchors on any rating file recwal's evaluation reads as a
RecBole atomic file (`.inter`: user_id, item_id, rating), measured by an
independent numpy harness on recwal's own hash 80/20 split
(docs/EVALUATION.md, "Any rating file"): popularity (a check that the split
and the metrics are recwal's: it must match `recwal eval`'s row to the
digit), EASE (binary X, λ 500; rating-valued X, λ 4000), implicit's ALS
(rating-valued confidence, 128 factors) and RP3beta (rating-valued, α 0.5,
β 0.7), plus small grids around the last two whose best point *on the test
split* is reported: an upper bound for those anchors, so that a recwal
figure above it is above any point of the grid.

    python=$(scripts/ranker/setup.sh)             # numpy; plus implicit and scipy:
    .venv-ranker/bin/pip install implicit==0.7.3 scipy==1.17.1
    .venv-ranker/bin/python scripts/anchors.py data/ml-1m/ml-1m.inter

Relevant = held-out rating ≥ 4; top-10 among the items not in the user's
training set; P/R/NDCG/HR@10 averaged over the users with a relevant
held-out rating (NDCG with 0/1 gains).
"""

import math
import sys
import time

import numpy as np

MASK = (1 << 64) - 1
K = 10
RELEVANT_MIN = 4.0


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def fnv1a64(text):
    value = 0xCBF29CE484222325
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * 0x100000001B3) & MASK
    return value


def is_id(text):
    return text.isdigit() and text == str(int(text)) and int(text) < (1 << 21)


def pair_key(user, item):
    """recwal::eval's hash 80/20 key: the integer form for integer ids (the
    MovieLens reference figures), the ids' bytes otherwise."""
    if is_id(user) and is_id(item):
        return splitmix64(((42 << 42) ^ (int(user) << 21) ^ int(item)) & MASK)
    return splitmix64(splitmix64(42 ^ fnv1a64(user)) ^ fnv1a64(item))


def item_order(item):
    return (0, int(item), "") if item.isdigit() else (1, 0, item)


def load(path):
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        names = [field.split(":")[0] for field in header]
        at_user, at_item, at_rating = names.index("user_id"), names.index("item_id"), names.index("rating")
        rows = []
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            rows.append((fields[at_user], fields[at_item], float(fields[at_rating])))
    return rows


def split(rows):
    by_user = {}
    for user, item, rating in rows:
        by_user.setdefault(user, []).append((pair_key(user, item), item_order(item), item, rating))
    train, test = [], []
    for user, ratings in by_user.items():
        ratings.sort()
        held = math.ceil(len(ratings) / 5)
        for at, (_, _, item, rating) in enumerate(ratings):
            (test if at < held else train).append((user, item, rating))
    return train, test


class Data:
    def __init__(self, train, test):
        users = sorted({user for user, _, _ in train} | {user for user, _, _ in test})
        items = sorted({item for _, item, _ in train} | {item for _, item, _ in test}, key=item_order)
        self.user_at = {user: at for at, user in enumerate(users)}
        self.item_at = {item: at for at, item in enumerate(items)}
        self.n_users, self.n_items = len(users), len(items)
        self.x = np.zeros((self.n_users, self.n_items), dtype=np.float64)
        for user, item, rating in train:
            self.x[self.user_at[user], self.item_at[item]] = rating
        self.relevant = {}
        for user, item, rating in test:
            if rating >= RELEVANT_MIN:
                self.relevant.setdefault(self.user_at[user], set()).add(self.item_at[item])


def measure(data, scores_of):
    """Top-10 metrics over the users with a relevant held-out rating;
    `scores_of(users)` gives a [len(users), n_items] score block."""
    users = sorted(data.relevant)
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    sums = np.zeros(4)
    for start in range(0, len(users), 512):
        block = users[start:start + 512]
        scores = np.asarray(scores_of(np.array(block)), dtype=np.float64).copy()
        scores[data.x[block] > 0] = -np.inf
        for row, user in enumerate(block):
            # Best first; ties to the lower item (a stable sort of -score).
            top = np.argsort(-scores[row], kind="stable")[:K]
            relevant = data.relevant[user]
            gains = np.array([1.0 if item in relevant else 0.0 for item in top])
            hits = gains.sum()
            ideal = discounts[:min(len(relevant), K)].sum()
            sums += [hits / K, hits / len(relevant), (gains * discounts).sum() / ideal, float(hits > 0)]
    return sums / len(users)


def ease(x, lam):
    gram = x.T @ x
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return b


def rp3beta(x, alpha, beta):
    users_rows = x / np.maximum(x.sum(axis=1, keepdims=True), 1e-12)
    items_rows = x.T / np.maximum(x.T.sum(axis=1, keepdims=True), 1e-12)
    w = np.power(items_rows, alpha) @ np.power(users_rows, alpha)
    popularity = (x > 0).sum(axis=0).astype(np.float64)
    w /= np.power(np.maximum(popularity, 1.0), beta)[None, :]
    w[np.diag_indices_from(w)] = 0.0
    return w


def als(x, factors, regularization, alpha, iterations):
    import implicit
    from scipy.sparse import csr_matrix

    model = implicit.als.AlternatingLeastSquares(
        factors=factors, regularization=regularization, alpha=alpha, iterations=iterations,
        random_state=42, use_gpu=False)
    model.fit(csr_matrix(x.astype(np.float32)), show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors)


def show(name, figures, seconds):
    p, r, n, h = figures
    print(f"| {name} | {p:.4f} | {r:.4f} | {n:.4f} | {h:.4f} | {seconds:.0f} |", flush=True)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "data/ml-1m/ml-1m.inter"
    rows = load(path)
    train, test = split(rows)
    data = Data(train, test)
    print(f"{len(rows)} ratings from {path}: hash 80/20 {len(train)} train / {len(test)} test; "
          f"{len(data.relevant)} users with a relevant held-out rating\n")
    print("| model | P@10 | R@10 | NDCG@10 | HR@10 | s |")
    print("|---|---|---|---|---|---|")
    began = time.time()
    popularity = (data.x > 0).sum(axis=0).astype(np.float64)
    show("popularity (check: recwal's row)", measure(data, lambda users: np.tile(popularity, (len(users), 1))),
         time.time() - began)
    for name, x, lam in (("EASE binary, λ 500", (data.x > 0).astype(np.float64), 500.0),
                         ("EASE rating-valued, λ 4000", data.x, 4000.0)):
        began = time.time()
        b = ease(x, lam)
        show(name, measure(data, lambda users, x=x, b=b: x[users] @ b), time.time() - began)
    best = None
    for alpha, beta in ((0.5, 0.7), (0.5, 0.5), (1.0, 0.5), (1.0, 0.7), (0.75, 0.6)):
        began = time.time()
        w = rp3beta(data.x, alpha, beta)
        figures = measure(data, lambda users, w=w: data.x[users] @ w)
        show(f"RP3beta rating-valued, α {alpha}, β {beta}", figures, time.time() - began)
        best = figures if best is None or figures[2] > best[2] else best
    show("RP3beta: the grid's best on test (an upper bound)", best, 0)
    best = None
    for regularization in (10.0, 20.0, 30.0, 45.0, 60.0, 100.0, 150.0, 250.0, 400.0):
        for alpha in (1.0, 2.5):
            began = time.time()
            users, items = als(data.x, 128, regularization, alpha, 15)
            figures = measure(data, lambda block, users=users, items=items: users[block] @ items.T)
            show(f"implicit ALS, 128 factors, rating-valued, reg {regularization}, α {alpha}", figures,
                 time.time() - began)
            best = figures if best is None or figures[2] > best[2] else best
    show("implicit ALS: the grid's best on test (an upper bound)", best, 0)


if __name__ == "__main__":
    main()
