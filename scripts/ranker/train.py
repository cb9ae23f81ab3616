#!/usr/bin/env python3
"""Trains recwal's learned ranker: LightGBM LambdaRank on the training set
`recwal eval --export-ranker-data DIR` writes, exported to ONNX with the
contract the engine checks (input `features` float32 [N, width], output
`score`, metadata `recwal.feature_schema`). See docs/MODELS.md, "A learned
ranker".

    python scripts/ranker/train.py --data DIR --out ranker.onnx

DIR/features.csv: `fold,user,item,label,<features>`, one row per
candidate, the rows of a (fold, user) contiguous (one query group);
DIR/meta.json names the schema.

Hyper-parameters are chosen on the training set alone: every point of a
small grid is cross-validated over the users (5 folds by a hash of the user
id, all of a user's groups in one), its number of rounds where the folds' mean NDCG@10 peaks; the best
point wins, and the final model is trained on every user with that point
and its number of rounds. The ONNX
model's scores are checked against LightGBM's on every row before it is
written. Deterministic: a fixed seed, LightGBM's deterministic mode, one
thread.

Writes the model and, beside it, <out>.json: the grid, the choice, the
validation NDCG@10, feature importances (gain).
"""

import argparse
import csv
import hashlib
import json
import os
import sys

import lightgbm as lgb
import numpy as np
import onnx
import onnxmltools
import onnxruntime
from onnxmltools.convert.common.data_types import FloatTensorType

SCHEMA_KEY = "recwal.feature_schema"
SEED = 20261207
# LightGBM's converter supports opsets up to 15; the engine's ONNX Runtime
# (1.31) runs it.
OPSET = 15
GRID = [
    {"num_leaves": leaves, "min_child_samples": min_child, "learning_rate": 0.05}
    for leaves in (7, 15, 31)
    for min_child in (20, 100)
]
ROUNDS_MAX = 1000
EARLY_STOP = 50
FOLDS = 5
CHECK_TOLERANCE = 1e-4


def fail(message):
    print(f"train.py: {message}", file=sys.stderr)
    sys.exit(2)


def load(data_dir):
    meta_path = os.path.join(data_dir, "meta.json")
    features_path = os.path.join(data_dir, "features.csv")
    try:
        with open(meta_path, encoding="utf-8") as meta_file:
            meta = json.load(meta_file)
    except (OSError, ValueError) as err:
        fail(f"{meta_path}: {err}")
    schema = meta.get("feature_schema")
    names = meta.get("features")
    if not isinstance(schema, int) or not isinstance(names, list) or not names:
        fail(f"{meta_path}: needs `feature_schema` (an integer) and `features` (the column names)")
    users, labels, rows = [], [], []
    try:
        with open(features_path, encoding="utf-8", newline="") as features_file:
            reader = csv.reader(features_file)
            header = next(reader, None)
            if header != ["fold", "user", "item", "label"] + names:
                fail(f"{features_path} line 1: header {header} is not fold,user,item,label,{','.join(names)}")
            for line, record in enumerate(reader, start=2):
                if len(record) != 4 + len(names):
                    fail(f"{features_path} line {line}: {len(record)} fields, expected {4 + len(names)}")
                try:
                    labels.append(int(record[3]))
                    rows.append([float(value) for value in record[4:]])
                except ValueError as err:
                    fail(f"{features_path} line {line}: {err}")
                users.append((record[0], record[1]))
    except OSError as err:
        fail(f"{features_path}: {err}")
    if not rows:
        fail(f"{features_path}: no rows")
    features = np.asarray(rows, dtype=np.float32)
    if not np.isfinite(features).all():
        fail(f"{features_path}: a feature is not finite")
    return meta, names, users, np.asarray(labels, dtype=np.int32), features


def ndcg_at_10(labels, scores, sizes):
    """Mean NDCG@10 (0/1 gains) over the groups with a positive, ordering
    each group by `scores` (higher first, ties in file order)."""
    total, counted, start = 0.0, 0, 0
    discounts = 1.0 / np.log2(np.arange(2, 12))
    for size in sizes:
        group = labels[start:start + size]
        order = np.argsort(-scores[start:start + size], kind="stable")[:10]
        ideal = discounts[:min(int(group.sum()), 10)].sum()
        if ideal > 0:
            total += float((group[order] * discounts[:len(order)]).sum()) / ideal
            counted += 1
        start += size
    return total / max(counted, 1)


def groups_of(keys):
    """The query groups: runs of equal (fold, user) keys (the file keeps a
    group's rows together), as (key, start, size)."""
    groups, seen = [], set()
    for at, key in enumerate(keys):
        if groups and groups[-1][0] == key:
            groups[-1][2] += 1
            continue
        if key in seen:
            fail(f"the rows of fold {key[0]}, user {key[1]!r} are not contiguous")
        seen.add(key)
        groups.append([key, at, 1])
    return groups


def cv_fold(user):
    """A user's cross-validation fold, by a hash of the id: all of a user's
    groups (one per export fold) land in the same one."""
    return hashlib.sha256(user.encode("utf-8")).digest()[0] % FOLDS


def subset(labels, features, groups, wanted):
    rows = np.concatenate([np.arange(start, start + size) for key, start, size in groups if wanted(key[1])])
    sizes = [size for key, _, size in groups if wanted(key[1])]
    return labels[rows], features[rows], sizes


def params(point):
    return dict(
        objective="lambdarank",
        metric="ndcg",
        eval_at=[10],
        seed=SEED,
        deterministic=True,
        force_row_wise=True,
        num_threads=1,
        verbosity=-1,
        **point,
    )


def to_onnx(model, width, schema):
    onx = onnxmltools.convert_lightgbm(
        model, initial_types=[("features", FloatTensorType([None, width]))], target_opset=OPSET)
    # The converter names the output `variable`; the contract says `score`.
    old = onx.graph.output[0].name
    for node in onx.graph.node:
        node.output[:] = ["score" if name == old else name for name in node.output]
    onx.graph.output[0].name = "score"
    del onx.metadata_props[:]
    entry = onx.metadata_props.add()
    entry.key, entry.value = SCHEMA_KEY, str(schema)
    onx.doc_string = "recwal learned ranker: LightGBM LambdaRank (scripts/ranker/train.py)"
    onnx.checker.check_model(onx)
    return onx


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the directory recwal eval --export-ranker-data wrote")
    parser.add_argument("--out", required=True, help="the ONNX file to write")
    args = parser.parse_args()

    meta, names, keys, labels, features = load(args.data)
    groups = groups_of(keys)
    sizes = [size for _, _, size in groups]
    width = features.shape[1]
    parts = [subset(labels, features, groups, lambda user, fold=fold: cv_fold(user) == fold) for fold in range(FOLDS)]
    rest = [subset(labels, features, groups, lambda user, fold=fold: cv_fold(user) != fold) for fold in range(FOLDS)]
    if any(not part[2] or not other[2] for part, other in zip(parts, rest)):
        fail(f"{len(groups)} groups: too few users for {FOLDS}-fold cross-validation")

    # Every grid point by 5-fold cross-validation over users, the rounds
    # where the folds' mean NDCG@10 peaks.
    grid = []
    for point in GRID:
        curves = []
        for (held_labels, held_features, held_sizes), (fit_labels, fit_features, fit_sizes) in zip(parts, rest):
            fit = lgb.Dataset(fit_features, fit_labels, group=fit_sizes, feature_name=names)
            held = lgb.Dataset(held_features, held_labels, group=held_sizes, reference=fit)
            history = {}
            lgb.train(
                params(point), fit, num_boost_round=ROUNDS_MAX, valid_sets=[held], valid_names=["held"],
                callbacks=[lgb.record_evaluation(history), lgb.early_stopping(EARLY_STOP, verbose=False)],
            )
            curves.append(history["held"]["ndcg@10"])
        length = min(len(curve) for curve in curves)
        mean = np.mean([curve[:length] for curve in curves], axis=0)
        rounds = int(np.argmax(mean)) + 1
        grid.append({**point, "rounds": rounds, "cv_ndcg@10": float(mean[rounds - 1])})
        print(f"  {point}: rounds {rounds}, cross-validated NDCG@10 {mean[rounds - 1]:.4f}", file=sys.stderr)
    best = max(grid, key=lambda entry: (entry["cv_ndcg@10"], -entry["num_leaves"]))
    point = {key: best[key] for key in ("num_leaves", "min_child_samples", "learning_rate")}
    # The baseline the ranker must beat: the strategy's own order, on the
    # same groups.
    baseline = float(np.mean([
        ndcg_at_10(part[0], part[1][:, names.index("strategy_rank")], part[2]) for part in parts]))

    dataset = lgb.Dataset(features, labels, group=sizes, feature_name=names, free_raw_data=False)
    final = lgb.train(params(point), dataset, num_boost_round=best["rounds"])
    onx = to_onnx(final, width, meta["feature_schema"])
    session = onnxruntime.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(["score"], {"features": features})[0].reshape(-1)
    want = final.predict(features, num_threads=1)
    worst = float(np.max(np.abs(got - want)))
    if worst > CHECK_TOLERANCE:
        fail(f"the ONNX model's scores differ from LightGBM's by up to {worst} (> {CHECK_TOLERANCE})")
    onnx.save(onx, args.out)
    importance = final.feature_importance(importance_type="gain")
    report = {
        "data": meta,
        "groups": len(sizes),
        "rows": int(len(labels)),
        "positives": int(labels.sum()),
        "grid": grid,
        "chosen": {**point, "rounds": best["rounds"], "cv_ndcg@10": best["cv_ndcg@10"]},
        "strategy_order_ndcg@10": baseline,
        "onnx_max_abs_diff": worst,
        "importance_gain": {name: round(float(value), 3) for name, value in zip(names, importance)},
        "versions": {"lightgbm": lgb.__version__, "onnxmltools": onnxmltools.__version__, "onnx": onnx.__version__},
    }
    with open(args.out + ".json", "w", encoding="utf-8") as report_file:
        json.dump(report, report_file, indent=2)
        report_file.write("\n")
    print(
        f"{args.out}: LambdaRank, {best['rounds']} rounds, {point}; cross-validated NDCG@10 "
        f"{best['cv_ndcg@10']:.4f} (the strategy's order: {baseline:.4f}); "
        f"{len(sizes)} groups, {len(labels)} rows; ONNX within {worst:.1e} of LightGBM",
    )


if __name__ == "__main__":
    main()
