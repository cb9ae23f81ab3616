#!/usr/bin/env bash
# Runs every test of the workspace: unit and property tests, the WAL's
# integration tests (simulated power loss, SIGKILL crashes, corruption sweep),
# the fuzz corpora, the doc examples, and each benchmark once in test mode.
# Needs only the Rust toolchain and a C compiler (SQLite, a benchmark
# reference, is compiled from its bundled source).
#
# Long modes: WAL_SIM_SCHEDULES=<n> (power-loss schedules, default 2000),
# RECWAL_CRASH_ITERS=<n> (log SIGKILLs per durability policy, default 20),
# RECWAL_ENGINE_CRASH_ITERS=<n> (engine SIGKILLs per policy, default 20),
# RECWAL_REPLAY_CASES=<n> (engine replay-equivalence streams, default 64).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
