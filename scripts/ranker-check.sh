#!/usr/bin/env bash
# The learned-ranker pipeline of docs/MODELS.md end to end, on the sample
# ratings that ship in the repository (examples/data/sample.inter):
# 1. from a data dir: import, `recwal export`, `recwal eval --protocol none
#    --export-ranker-data`, train LightGBM LambdaRank and export ONNX with
#    scripts/ranker/train.py (pinned packages in .venv-ranker/, from PyPI),
#    register and activate it in the data dir with `recwal models`;
# 2. for a figure: the training set from hash 80/20's train part, trained,
#    measured on the test part with `recwal eval --ranker` (every answer
#    must be ranked by the model). Uses the debug `recwal` the tests built
# (or RECWAL_BIN). Needs ORT_DYLIB_PATH (scripts/test.sh sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${RECWAL_BIN:-target/debug/recwal}"
[[ -x "$bin" ]] || cargo build --quiet --locked -p recwal-server
python="$(scripts/ranker/setup.sh)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say() { echo "ranker-check: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
export RUST_LOG=warn

# 1. From a data dir.
"$bin" import examples/data/sample.inter --data-dir "$work/dir" >/dev/null
"$bin" export --data-dir "$work/dir" --out "$work/events.jsonl"
"$bin" eval "$work/events.jsonl" --protocol none --export-ranker-data "$work/live" --candidates 50 --ranker-folds 5 \
    >"$work/live.out" || fail "export from the data dir: $(cat "$work/live.out")"
grep -q '"protocol": "none"' "$work/live/meta.json" || fail "meta.json: $(cat "$work/live/meta.json")"
"$python" scripts/ranker/train.py --data "$work/live" --out "$work/live.onnx" >/dev/null 2>"$work/live.err" \
    || fail "train.py on the data dir's set: $(cat "$work/live.err")"
"$bin" models add "$work/live.onnx" --data-dir "$work/dir" >/dev/null
"$bin" models activate 1 --data-dir "$work/dir" >/dev/null
"$bin" models status --json --data-dir "$work/dir" >"$work/status.json"
grep -q '"active": *1' "$work/status.json" || fail "not active after activate: $(cat "$work/status.json")"

# 2. Measured on a test split it never saw.
"$bin" eval examples/data/sample.inter --export-ranker-data "$work/data" --candidates 50 --ranker-folds 5 \
    >"$work/export.out" || fail "export: $(cat "$work/export.out")"
grep -q '"feature_schema": 2' "$work/data/meta.json" || fail "meta.json names no schema 2"
"$python" scripts/ranker/train.py --data "$work/data" --out "$work/ranker.onnx" >"$work/train.out" 2>"$work/train.err" \
    || fail "train.py: $(cat "$work/train.err")"
cat "$work/train.out" >&2
"$bin" eval examples/data/sample.inter --candidates 50 --ranker "$work/ranker.onnx" --strategies ease \
    >"$work/eval.out" || fail "eval --ranker: $(cat "$work/eval.out")"
grep -q '^| ease + ranker (v1, 50 candidates) |' "$work/eval.out" || fail "no ranked row: $(cat "$work/eval.out")"
grep '^| ease' "$work/eval.out" >&2
say "ok: a schema-2 LambdaRank ranker trained from a data dir's log and activated there; another measured"
