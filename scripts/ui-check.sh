#!/usr/bin/env bash
# The dashboard (/ui) in a real headless browser: Debian's chromium driven by
# Playwright for Python (scripts/ui_check.py), against the debug
# `recwal serve` on a free loopback port with a fresh data dir and a token.
# Every page must load with no console error; an event ingested through the
# API must show in the explorer's answers and reasons; activating a model
# version from the UI without the token must be refused (the server's active
# version unchanged) and with it succeed. Screenshots of every page go to
# target/ui-check/ (RECWAL_UI_CHECK_OUT to change it). Exits non-zero on any
# failure, naming it.
#
# Installs what it needs, once: the Debian package `chromium` (root and
# apt-get, else it fails saying so) and playwright (pinned) from PyPI into
# .venv-ui/ (git-ignored). Playwright drives the Debian binary through its
# executable path: no `playwright install`, no browser download.
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_VERSION=1.65.2
VENV=.venv-ui

CHROMIUM="$(command -v chromium || true)"
if [[ -z "$CHROMIUM" ]]; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "ui-check: installing chromium (Debian package chromium)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null \
            || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null; }
        CHROMIUM="$(command -v chromium)"
    else
        echo "ui-check: chromium is missing and cannot be installed here (needs root and apt-get: apt-get install chromium)" >&2
        exit 1
    fi
fi

if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('playwright') != '$PLAYWRIGHT_VERSION')" 2>/dev/null; then
    echo "ui-check: installing playwright $PLAYWRIGHT_VERSION into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "playwright==$PLAYWRIGHT_VERSION"
fi

BIN="${CARGO_TARGET_DIR:-target}/debug/recwal"
# The assets are embedded: build (a no-op when cargo test built it already),
# so the binary checked is the tree's.
cargo build --quiet --locked -p recwal-server --bin recwal

if [[ -z "${ORT_DYLIB_PATH:-}" && -f .onnxruntime/lib/libonnxruntime.so ]]; then
    export ORT_DYLIB_PATH="$PWD/.onnxruntime/lib/libonnxruntime.so"
fi

exec "$VENV/bin/python" scripts/ui_check.py --binary "$BIN" --chromium "$CHROMIUM" \
    --out "${RECWAL_UI_CHECK_OUT:-${CARGO_TARGET_DIR:-target}/ui-check}"
