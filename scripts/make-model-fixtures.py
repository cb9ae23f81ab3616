#!/usr/bin/env python3
"""Generates the small ONNX models in tests/fixtures/models/ that recwal's
model-scoring tests load, plus weights.json and README.md describing them.

Needs the PyPI `onnx` and `numpy` packages; `--check` additionally needs
`onnxruntime==1.31.1` (the version scripts/install-onnxruntime.sh installs).
Use a throwaway venv outside the repo:

    python3 -m venv /tmp/onnxvenv
    /tmp/onnxvenv/bin/pip install onnx numpy onnxruntime==1.31.1
    /tmp/onnxvenv/bin/python scripts/make-model-fixtures.py          # write
    /tmp/onnxvenv/bin/python scripts/make-model-fixtures.py --check  # write + verify with ORT

(The committed files were made with onnx 1.23.2, numpy 2.4.6, onnxruntime 1.31.1.)

Deterministic: no randomness (the slow model's weights come from a fixed
integer LCG), no timestamps, so every run writes the same bytes.

Feature schema v1, the contract every good model follows:
  input  `features`  float32 [N, 6]   (N symbolic)
  output `score`     float32 [N]
  metadata_props     recwal.feature_schema = "1"
Columns: 0 strategy_score, 1 usercf, 2 item_rank (all in [0, 1]),
3 popularity, 4 item_users, 5 user_activity (ln(1 + count), >= 0).
"""

import hashlib
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT_DIR = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models"))
OPSET = 17
IR_VERSION = 8
N_FEATURES = 6
SCHEMA_KEY = "recwal.feature_schema"

W_V1 = [1.0, 0.5, 0.25, 0.125, 0.0, 0.0]
B_V1 = 0.0
W_V2 = [0.0, 0.0, 0.0, 1.0, 0.5, 0.0]
B_V2 = 10.0
# Feature schema 2 (12 columns, the first six schema 1's): 0.1 x
# strategy_score + item_mean_value (column 8), so its order differs from
# the strategy's and shows the model reads the schema-2 columns.
N_FEATURES_S2 = 12
W_S2 = [0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
B_S2 = 0.0

# failing.onnx errors at run time when any row's user_activity exceeds this.
FAIL_COLUMN = 5
FAIL_THRESHOLD = 3.0

# slow.onnx: K MatMuls of a [SLOW_ROWS, SLOW_DIM] tensor with one shared
# [SLOW_DIM, SLOW_DIM] initializer. K tuned for ~40 ms per Run (20 rows) on the
# 2-core AMD EPYC (AVX-512) dev VM with ORT 1.31.1 defaults; ~80 ms with
# intra_op_num_threads = 1. Slower CPUs take proportionally longer.
SLOW_ROWS = 512
SLOW_DIM = 512
SLOW_K = 70
SLOW_EPS = 1e-30


# ---------------------------------------------------------------- helpers


def f32(values, shape=None):
    arr = np.asarray(values, dtype=np.float32)
    return arr if shape is None else arr.reshape(shape)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name=name)


def finish(graph, *, schema="1", model_version=1, doc=""):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="recwal-fixtures",
        model_version=model_version,
        doc_string=doc,
    )
    if schema is not None:
        helper.set_model_props(model, {SCHEMA_KEY: schema})
    onnx.checker.check_model(model, full_check=True)
    return model


def io(n_features=N_FEATURES, in_name="features", out_name="score"):
    inp = helper.make_tensor_value_info(in_name, TensorProto.FLOAT, ["N", n_features])
    out = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N"])
    return inp, out


def linear_nodes(in_name, out_name, weights, bias, prefix=""):
    """features @ W + b, flattened to [N]. Returns (nodes, initializers)."""
    n = len(weights)
    inits = [
        init(prefix + "W", f32(weights, (n, 1))),
        init(prefix + "B", f32([bias])),
        init(prefix + "flat_shape", np.array([-1], dtype=np.int64)),
    ]
    nodes = [
        helper.make_node("MatMul", [in_name, prefix + "W"], [prefix + "mm"], name=prefix + "matmul"),
        helper.make_node("Add", [prefix + "mm", prefix + "B"], [prefix + "lin"], name=prefix + "add_bias"),
        helper.make_node("Reshape", [prefix + "lin", prefix + "flat_shape"], [out_name], name=prefix + "flatten"),
    ]
    return nodes, inits


# ---------------------------------------------------------------- models


def linear_model(name, weights, bias, *, schema="1", model_version=1, in_name="features",
                 out_name="score", doc=""):
    inp, out = io(len(weights), in_name, out_name)
    nodes, inits = linear_nodes(in_name, out_name, weights, bias)
    graph = helper.make_graph(nodes, name, [inp], [out], initializer=inits)
    return finish(graph, schema=schema, model_version=model_version, doc=doc)


def nan_output_model():
    inp, out = io()
    inits = [
        init("W", f32(W_V1, (N_FEATURES, 1))),
        init("nan", f32([np.nan])),
        init("flat_shape", np.array([-1], dtype=np.int64)),
    ]
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["mm"], name="matmul"),
        helper.make_node("Mul", ["mm", "nan"], ["poisoned"], name="times_nan"),
        helper.make_node("Reshape", ["poisoned", "flat_shape"], ["score"], name="flatten"),
    ]
    graph = helper.make_graph(nodes, "nan_output", [inp], [out], initializer=inits)
    return finish(graph, doc="(features @ w_v1) * NaN: every score is NaN.")


def failing_model():
    """v1 scores + guard, where guard = Gather([0.0], flag) and
    flag = Cast(ReduceMax(features[:, 5]) > 3.0, int64): index 1 is out of
    bounds, so Run fails whenever any row's feature 5 exceeds 3.0."""
    inp, out = io()
    nodes, inits = linear_nodes("features", "v1_score", W_V1, B_V1)
    inits += [
        init("fail_col", np.array(FAIL_COLUMN, dtype=np.int64)),  # scalar index
        init("fail_threshold", f32(FAIL_THRESHOLD)),  # scalar
        init("guard_data", f32([0.0])),  # shape [1]: only index 0 is valid
    ]
    nodes += [
        helper.make_node("Gather", ["features", "fail_col"], ["col5"], axis=1, name="take_col5"),
        helper.make_node("ReduceMax", ["col5"], ["col5_max"], axes=[0], keepdims=0, name="max_col5"),
        helper.make_node("Greater", ["col5_max", "fail_threshold"], ["too_big"], name="over_threshold"),
        helper.make_node("Cast", ["too_big"], ["flag"], to=TensorProto.INT64, name="flag_int"),
        helper.make_node("Gather", ["guard_data", "flag"], ["guard"], axis=0, name="guard_gather"),
        helper.make_node("Add", ["v1_score", "guard"], ["score"], name="add_guard"),
    ]
    graph = helper.make_graph(nodes, "failing", [inp], [out], initializer=inits)
    return finish(graph, doc="v1 scores; Run fails (Gather index out of bounds) when any "
                             f"features[:, {FAIL_COLUMN}] > {FAIL_THRESHOLD}.")


def lcg_values(count, seed):
    """`count` integers in [-1000, 1000] from a fixed 64-bit LCG (deterministic
    on every platform, unlike float sin/random)."""
    x = seed
    out = np.empty(count, dtype=np.int32)
    mask = (1 << 64) - 1
    for i in range(count):
        x = (x * 6364136223846793005 + 1442695040888963407) & mask
        out[i] = (x >> 33) % 2001 - 1000
    return out


def slow_model():
    """v1 scores + 1e-30 * heavy, heavy = ReduceSum(tanh(...tanh(X @ M) @ M...))
    over K MatMuls with one shared [512, 512] initializer M, where X0 is a
    [512, 512] tensor that depends on ReduceSum(features). All intermediates stay in
    [-1, 1] (Tanh), so heavy is finite and its contribution is ~1e-26."""
    inp, out = io()
    nodes, inits = linear_nodes("features", "v1_score", W_V1, B_V1)
    # |M| <= 0.1 (std ~0.058): each MatMul has gain ~sqrt(512) * 0.058 ~ 1.3,
    # so with Tanh the activations settle at a steady O(0.5) magnitude instead
    # of decaying towards denormals (slow, and platform-dependent) or 0.
    m = lcg_values(SLOW_DIM * SLOW_DIM, seed=1).astype(np.float32) * np.float32(0.0001)
    col = lcg_values(SLOW_DIM, seed=2).astype(np.float32) * np.float32(0.001)
    row = lcg_values(SLOW_ROWS, seed=3).astype(np.float32) * np.float32(0.001)
    inits += [
        init("heavy_M", m.reshape(SLOW_DIM, SLOW_DIM)),
        init("heavy_row", row.reshape(SLOW_ROWS, 1)),
        init("heavy_col", col.reshape(1, SLOW_DIM)),
        init("heavy_scale", f32(0.1)),
        init("heavy_eps", f32(SLOW_EPS)),
    ]
    nodes += [
        # s = tanh(0.1 * sum(features)): a scalar in [-1, 1] that depends on
        # the input, so nothing downstream can be constant-folded.
        helper.make_node("ReduceSum", ["features"], ["feat_sum"], keepdims=0, name="sum_features"),
        helper.make_node("Mul", ["feat_sum", "heavy_scale"], ["feat_sum_scaled"], name="scale_sum"),
        helper.make_node("Tanh", ["feat_sum_scaled"], ["s"], name="tanh_s"),
        # X0 = tanh(row * col + s): [512, 1] * [1, 512] -> [512, 512], plus
        # the input-dependent scalar. Starting from O(0.1..1) values (even for
        # s = 0) keeps every layer clear of denormals.
        helper.make_node("Mul", ["heavy_row", "heavy_col"], ["outer"], name="outer"),
        helper.make_node("Add", ["outer", "s"], ["x0_pre"], name="outer_plus_s"),
        helper.make_node("Tanh", ["x0_pre"], ["x0"], name="tanh_x0"),
    ]
    prev = "x0"
    for k in range(1, SLOW_K + 1):
        nodes += [
            helper.make_node("MatMul", [prev, "heavy_M"], [f"mm{k}"], name=f"matmul{k}"),
            helper.make_node("Tanh", [f"mm{k}"], [f"x{k}"], name=f"tanh{k}"),
        ]
        prev = f"x{k}"
    nodes += [
        helper.make_node("ReduceSum", [prev], ["heavy"], keepdims=0, name="sum_heavy"),
        helper.make_node("Mul", ["heavy", "heavy_eps"], ["negligible"], name="times_eps"),
        helper.make_node("Add", ["v1_score", "negligible"], ["score"], name="add_negligible"),
    ]
    graph = helper.make_graph(nodes, "slow", [inp], [out], initializer=inits)
    return finish(graph, doc=f"v1 scores + {SLOW_EPS} * (chain of {SLOW_K} [{SLOW_ROWS},{SLOW_DIM}]x"
                             f"[{SLOW_DIM},{SLOW_DIM}] MatMuls): slow but same scores as v1.")


# mlp_v1.onnx / mlp_v2.onnx: the heavy ranker of GPU serving (issue 18), a
# realistic size for a GPU: features [N, 6] -> 3 hidden layers of MLP_HIDDEN
# (ReLU) -> 1. Every weight and bias is an LCG integer in [-1000, 1000] times a
# float32 scale per tensor, so tests can rebuild the same weights in Rust
# (tests/model_support: `mlp_score`): tensor t of the model with seed S uses
# lcg_values(count, S * 16 + t), t = 2 * layer for W, 2 * layer + 1 for b.
MLP_HIDDEN = 256
MLP_DIMS = [N_FEATURES, MLP_HIDDEN, MLP_HIDDEN, MLP_HIDDEN, 1]
# W scales keep the ReLU activations O(1) through the layers; b scale 1e-4.
MLP_W_SCALES = [0.001, 0.0002, 0.0002, 0.001]
MLP_B_SCALE = 0.0001
MLP_SEEDS = {"mlp_v1": 11, "mlp_v2": 23}


def mlp_tensors(seed):
    """[(W [fan_in, fan_out], b [fan_out])] per layer, float32."""
    layers = []
    for layer, (fan_in, fan_out) in enumerate(zip(MLP_DIMS, MLP_DIMS[1:])):
        w = lcg_values(fan_in * fan_out, seed * 16 + 2 * layer).astype(np.float32) * np.float32(
            MLP_W_SCALES[layer])
        b = lcg_values(fan_out, seed * 16 + 2 * layer + 1).astype(np.float32) * np.float32(MLP_B_SCALE)
        layers.append((w.reshape(fan_in, fan_out), b))
    return layers


def mlp_model(name, model_version):
    inp, out = io()
    nodes, inits, prev = [], [], "features"
    layers = mlp_tensors(MLP_SEEDS[name])
    for layer, (w, b) in enumerate(layers):
        inits += [init(f"W{layer}", w), init(f"b{layer}", b)]
        nodes += [
            helper.make_node("MatMul", [prev, f"W{layer}"], [f"mm{layer}"], name=f"matmul{layer}"),
            helper.make_node("Add", [f"mm{layer}", f"b{layer}"], [f"pre{layer}"], name=f"bias{layer}"),
        ]
        if layer + 1 < len(layers):
            nodes.append(helper.make_node("Relu", [f"pre{layer}"], [f"h{layer}"], name=f"relu{layer}"))
            prev = f"h{layer}"
        else:
            prev = f"pre{layer}"
    inits.append(init("flat_shape", np.array([-1], dtype=np.int64)))
    nodes.append(helper.make_node("Reshape", [prev, "flat_shape"], ["score"], name="flatten"))
    graph = helper.make_graph(nodes, name, [inp], [out], initializer=inits)
    return finish(graph, model_version=model_version,
                  doc=f"MLP {' -> '.join(map(str, MLP_DIMS))}, ReLU, LCG weights (seed {MLP_SEEDS[name]})")


def mlp_reference(name, features):
    """The MLP's scores in float64 from the same float32 weights (--check)."""
    x = np.asarray(features, dtype=np.float64)
    layers = mlp_tensors(MLP_SEEDS[name])
    for layer, (w, b) in enumerate(layers):
        x = x @ w.astype(np.float64) + b.astype(np.float64)
        if layer + 1 < len(layers):
            x = np.maximum(x, 0.0)
    return x.reshape(-1)


# ---------------------------------------------------------------- output


MODELS = [
    # (file, builder, schema, description, weights.json key or None)
    ("linear_v1.onnx", lambda: linear_model("linear_v1", W_V1, B_V1, model_version=1,
                                            doc="score = features @ w + b (v1)"),
     "1", "Good model. `score = features @ w + b`, w = [1, 0.5, 0.25, 0.125, 0, 0], b = 0 "
          "(scores < 10 for sensible inputs). model_version 1.", "linear_v1"),
    ("linear_v2.onnx", lambda: linear_model("linear_v2", W_V2, B_V2, model_version=2,
                                            doc="score = features @ w + b (v2)"),
     "1", "Good model, same graph as v1 with w = [0, 0, 0, 1, 0.5, 0], b = 10, so every score "
          "is >= 10 for non-negative features. model_version 2.", "linear_v2"),
    ("linear_schema2.onnx", lambda: linear_model("linear_schema2", W_S2, B_S2, schema="2", model_version=1,
                                                 doc="score = features @ w + b (feature schema 2)"),
     "2", "Good model of feature schema 2: input `[N, 12]`, `score = features @ w + b`, w = 0.1 "
          "on strategy_score and 1 on item_mean_value (column 8), b = 0.", "linear_schema2"),
    ("wrong_schema.onnx", lambda: linear_model("wrong_schema", W_V1, B_V1, schema="99",
                                               doc="v1 graph, feature schema 99"),
     "99", "v1's graph but `recwal.feature_schema` = \"99\". Must be rejected at load.", "wrong_schema"),
    ("no_schema.onnx", lambda: linear_model("no_schema", W_V1, B_V1, schema=None,
                                            doc="v1 graph, no feature schema"),
     "(none)", "v1's graph with no `recwal.feature_schema` metadata. Must be rejected at load.",
     "no_schema"),
    ("wrong_shape.onnx", lambda: linear_model("wrong_shape", W_V1[:5], B_V1,
                                              doc="input [N, 5]"),
     "1", "Input `features` is `[N, 5]` (w = first 5 of v1's). ORT loads it; recwal's schema "
          "check must reject it.", "wrong_shape"),
    ("wrong_names.onnx", lambda: linear_model("wrong_names", W_V1, B_V1, in_name="x", out_name="y",
                                              doc="input x, output y"),
     "1", "v1's graph with input `x` and output `y`. ORT loads it; recwal's schema check must "
          "reject it.", "wrong_names"),
    ("nan_output.onnx", nan_output_model,
     "1", "Valid contract; `score = (features @ w_v1) * NaN`, so every score is NaN.", None),
    ("failing.onnx", failing_model,
     "1", f"Valid contract; returns v1's scores but Run fails (Gather index out of bounds) "
          f"whenever any row has feature {FAIL_COLUMN} (user_activity) > {FAIL_THRESHOLD}. "
          "Loads fine.", "failing"),
    ("slow.onnx", slow_model,
     "1", f"Valid contract; v1's scores plus `1e-30 * heavy`, heavy from {SLOW_K} chained "
          f"[{SLOW_ROWS},{SLOW_DIM}]x[{SLOW_DIM},{SLOW_DIM}] MatMuls + Tanh (one shared "
          "initializer). ~40 ms per Run (20 rows) on the 2-core dev VM, ~80 ms single-threaded.", "slow"),
    ("mlp_v1.onnx", lambda: mlp_model("mlp_v1", 1),
     "1", "The heavy ranker (GPU serving): MLP 6 -> 256 -> 256 -> 256 -> 1, ReLU, weights from "
          "the LCG with seed 11 (see `MLP_*` in the script; tests rebuild them). model_version 1.", None),
    ("mlp_v2.onnx", lambda: mlp_model("mlp_v2", 2),
     "1", "The same MLP with the weights of seed 23. model_version 2.", None),
]

WEIGHTS = {
    "linear_v1": (W_V1, B_V1),
    "linear_v2": (W_V2, B_V2),
    "linear_schema2": (W_S2, B_S2),
    "wrong_schema": (W_V1, B_V1),
    "no_schema": (W_V1, B_V1),
    "wrong_shape": (W_V1[:5], B_V1),
    "wrong_names": (W_V1, B_V1),
    "failing": (W_V1, B_V1),
    "slow": (W_V1, B_V1),
}


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def generate():
    os.makedirs(OUT_DIR, exist_ok=True)
    written = {}
    for fname, build, _schema, _desc, _key in MODELS:
        data = build().SerializeToString()
        write(os.path.join(OUT_DIR, fname), data)
        written[fname] = data

    v1 = written["linear_v1.onnx"]
    corrupt = v1[: len(v1) // 2] + b"\xff" * 64
    write(os.path.join(OUT_DIR, "corrupt.onnx"), corrupt)
    written["corrupt.onnx"] = corrupt

    weights = {k: {"weights": [float(x) for x in w], "bias": float(b)} for k, (w, b) in WEIGHTS.items()}
    wjson = (json.dumps(weights, indent=2, sort_keys=True) + "\n").encode()
    write(os.path.join(OUT_DIR, "weights.json"), wjson)

    rows = []
    for fname, _build, schema, desc, key in MODELS:
        rows.append((fname, schema, desc, key))
    rows.append(("corrupt.onnx", "-", "First half of `linear_v1.onnx`'s bytes followed by 64 bytes "
                                      "0xFF. Not a valid protobuf; must fail at load.", None))
    lines = [
        "# ONNX model fixtures",
        "",
        "Generated by `scripts/make-model-fixtures.py` (do not edit by hand); deterministic, so",
        "regenerating writes the same bytes:",
        "",
        "```sh",
        "python3 -m venv /tmp/onnxvenv",
        "/tmp/onnxvenv/bin/pip install onnx numpy onnxruntime==1.31.1",
        "/tmp/onnxvenv/bin/python scripts/make-model-fixtures.py --check",
        "```",
        "",
        f"All models: opset {OPSET}, IR version {IR_VERSION}, producer `recwal-fixtures`.",
        "Feature schema v1 (the contract good models follow): one input `features` float32",
        "`[N, 6]` (N symbolic), one output `score` float32 `[N]`, metadata",
        "`recwal.feature_schema` = `\"1\"`. Columns: 0 strategy_score, 1 usercf, 2 item_rank",
        "(in [0, 1]); 3 popularity, 4 item_users, 5 user_activity (ln(1 + count), >= 0).",
        "",
        "`weights.json` maps a model (file name without `.onnx`) to the `weights` and `bias`",
        "of its linear part, for models whose successful output is `features @ weights + bias`",
        "(within float32 rounding; for `slow` within ~1e-26).",
        "",
        "| File | Bytes | `recwal.feature_schema` | What it is | `weights.json` key |",
        "|---|---:|---|---|---|",
    ]
    for fname, schema, desc, key in rows:
        lines.append(f"| `{fname}` | {len(written[fname])} | {schema} | {desc} | "
                     f"{'`' + key + '`' if key else '-'} |")
    lines.append("")
    write(os.path.join(OUT_DIR, "README.md"), "\n".join(lines).encode())

    for fname in sorted(written):
        print(f"{fname:20s} {len(written[fname]):8d}  sha256 {hashlib.sha256(written[fname]).hexdigest()[:16]}")


# ---------------------------------------------------------------- checks


def warmup_batch(rows=8, width=N_FEATURES):
    """The engine's warm-up batch: row i, column j = ((i*7 + j*3) % 11) / 10."""
    return np.array([[((i * 7 + j * 3) % 11) / 10.0 for j in range(width)] for i in range(rows)],
                    dtype=np.float32)


def check():
    import time

    import onnxruntime as ort

    print(f"\n== checks with onnxruntime {ort.__version__} (default session options, ORT_ENABLE_ALL)")
    opts = ort.SessionOptions()
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    batch = warmup_batch()
    path = lambda f: os.path.join(OUT_DIR, f)
    sess = lambda f: ort.InferenceSession(path(f), opts, providers=["CPUExecutionProvider"])
    np.set_printoptions(precision=6, suppress=True, linewidth=120)

    for fname, _b, schema, _d, key in MODELS:
        s = sess(fname)
        meta = s.get_modelmeta().custom_metadata_map
        ins = [(i.name, i.shape, i.type) for i in s.get_inputs()]
        outs = [(o.name, o.shape, o.type) for o in s.get_outputs()]
        print(f"\n{fname}: loads; inputs {ins} outputs {outs} metadata {meta}")
        x = batch[:, :5] if fname == "wrong_shape.onnx" else batch
        if schema == "2":
            x = warmup_batch(width=N_FEATURES_S2)
        y = s.run(None, {ins[0][0]: x})[0]
        print(f"  warm-up batch -> shape {y.shape} {y.dtype}: {y}")
        assert y.shape == (8,) and y.dtype == np.float32
        if fname == "nan_output.onnx":
            assert np.isnan(y).all(), "nan_output must yield NaN"
            print("  all NaN: ok")
            continue
        if fname.startswith("mlp_"):
            expected = mlp_reference(fname[:-len(".onnx")], x)
            err = float(np.max(np.abs(y - expected) / (1.0 + np.abs(expected))))
            print(f"  max |score - reference| / (1 + |reference|) = {err:.3g}")
            assert err <= 1e-4, err
            big = np.tile(batch, (100, 1))  # 800 candidates
            started = time.perf_counter()
            for _ in range(20):
                s.run(None, {"features": big})
            print(f"  800 rows: {(time.perf_counter() - started) / 20 * 1000:.2f} ms per Run")
            continue
        w, b = WEIGHTS[key]
        expected = x.astype(np.float64) @ np.array(w, dtype=np.float64) + b
        err = float(np.max(np.abs(y - expected)))
        print(f"  max |score - (features @ w + b)| = {err:.3g}")
        assert err <= 1e-6, err
        if fname == "linear_v2.onnx":
            assert (y >= 10).all()
        if fname == "linear_v1.onnx":
            assert (y < 10).all()

    # failing.onnx: succeeds for feature 5 <= 3, fails at Run for > 3.
    s = sess("failing.onnx")
    ok = np.array([[0.5, 0.5, 0.5, 1.0, 1.0, 1.0]], dtype=np.float32)
    print(f"\nfailing.onnx feature5=1.0 -> {s.run(None, {'features': ok})[0]}")
    edge = ok.copy()
    edge[0, 5] = 3.0
    print(f"failing.onnx feature5=3.0 -> {s.run(None, {'features': edge})[0]}")
    bad = np.vstack([ok, ok])
    bad[1, 5] = 4.0
    try:
        s.run(None, {"features": bad})
    except Exception as e:  # noqa: BLE001
        print(f"failing.onnx feature5=4.0 -> {type(e).__name__}: {e}")
    else:
        raise AssertionError("failing.onnx did not fail for feature 5 = 4.0")
    # The guard must survive ORT's optimisations: check the optimized graph.
    opt_path = "/tmp/recwal_failing_optimized.onnx"
    o2 = ort.SessionOptions()
    o2.optimized_model_filepath = opt_path
    ort.InferenceSession(path("failing.onnx"), o2, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(opt_path).graph.node]
    print(f"failing.onnx optimized graph ops: {ops}")
    assert ops.count("Gather") == 2

    # slow.onnx latency: median of 5 runs, 20 rows, after one warm-up run.
    s = sess("slow.onnx")
    x20 = warmup_batch(20)
    s.run(None, {"features": x20})
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        y = s.run(None, {"features": x20})[0]
        times.append((time.perf_counter() - t0) * 1000)
    ref = x20.astype(np.float64) @ np.array(W_V1) + B_V1
    print(f"\nslow.onnx 20 rows: runs {[round(t, 1) for t in times]} ms, median "
          f"{sorted(times)[2]:.1f} ms; max err vs v1 {float(np.max(np.abs(y - ref))):.3g}")
    o1 = ort.SessionOptions()
    o1.intra_op_num_threads = 1
    s1 = ort.InferenceSession(path("slow.onnx"), o1, providers=["CPUExecutionProvider"])
    s1.run(None, {"features": x20})
    t1 = []
    for _ in range(5):
        t0 = time.perf_counter()
        s1.run(None, {"features": x20})
        t1.append((time.perf_counter() - t0) * 1000)
    print(f"slow.onnx 20 rows, intra_op_num_threads=1: median {sorted(t1)[2]:.1f} ms")

    # corrupt.onnx must fail to load.
    try:
        sess("corrupt.onnx")
    except Exception as e:  # noqa: BLE001
        print(f"\ncorrupt.onnx -> {type(e).__name__}: {e}")
    else:
        raise AssertionError("corrupt.onnx loaded")
    try:
        onnx.load(path("corrupt.onnx"))
    except Exception as e:  # noqa: BLE001
        print(f"onnx.load(corrupt.onnx) -> {type(e).__name__}: {e}")
    else:
        print("onnx.load(corrupt.onnx) did not raise")

    total = sum(os.path.getsize(path(f)) for f in os.listdir(OUT_DIR))
    print(f"\nall checks passed; {OUT_DIR} holds {total} bytes")


if __name__ == "__main__":
    generate()
    if "--check" in sys.argv[1:]:
        check()
