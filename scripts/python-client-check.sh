#!/usr/bin/env bash
# Generates a Python client from `recwal serve`'s own /openapi.json with
# openapi-python-client (pinned below) and runs the README's quickstart
# through it (tests/python/test_quickstart_client.py): ingest, recommend,
# similar, popular, the catalogue, a model upload and activation, errors as
# application/problem+json. Exits non-zero on any failure.
#
# The generator and the client's runtime dependencies are installed (pinned)
# into .venv-pyclient/ (git-ignored) on first use; the client is generated
# into a scratch directory, never committed. Starts the server itself: the
# debug binary, a fresh temporary data dir, a free loopback port, a token.
# KEEP=1 keeps the scratch directory (client, server log).
set -euo pipefail
cd "$(dirname "$0")/.."

GENERATOR_VERSION=0.29.1
DATEUTIL_VERSION=2.9.0.post0
VENV=.venv-pyclient

if ! "$VENV/bin/openapi-python-client" --version 2>/dev/null | grep -q "$GENERATOR_VERSION" \
    || ! "$VENV/bin/python" -c "import dateutil" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "openapi-python-client==$GENERATOR_VERSION" "python-dateutil==$DATEUTIL_VERSION"
fi

source scripts/lib/check-server.sh
start_check_server pyclient

# The document is protected like every route but the probes.
"$VENV/bin/python" - "$BASE" "$TOKEN" "$WORK/openapi.json" <<'PY'
import sys, time, httpx
base, token, out = sys.argv[1:]
for _ in range(600):
    try:
        if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
            break
    except httpx.HTTPError:
        pass
    time.sleep(0.1)
answer = httpx.get(f"{base}/openapi.json", headers={"authorization": f"Bearer {token}"}, timeout=10)
answer.raise_for_status()
open(out, "wb").write(answer.content)
PY

# The generator's command (docs/SERVER.md, "A Python client").
"$VENV/bin/openapi-python-client" generate --path "$WORK/openapi.json" --meta none \
    --output-path "$WORK/client/recwal_client" >"$WORK/generate.log" 2>&1 || {
    cat "$WORK/generate.log" >&2
    exit 1
}

RECWAL_URL="$BASE" RECWAL_TOKEN="$TOKEN" RECWAL_MODELS="$PWD/tests/fixtures/models" \
    PYTHONPATH="$WORK/client" "$VENV/bin/python" tests/python/test_quickstart_client.py || {
    echo "python-client-check FAILED (server log: $WORK/server.log; KEEP=1 keeps it)" >&2
    KEEP=1
    exit 1
}
echo "python-client-check: the generated client ran the quickstart (openapi-python-client $GENERATOR_VERSION)"
