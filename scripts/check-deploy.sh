#!/usr/bin/env bash
# Checks the files in deploy/ with the tools that will read them:
#   - promtool check rules / test rules on deploy/prometheus/ (promtool is
#     installed from Debian's `prometheus` package when missing: root and
#     apt needed, else it fails saying so);
#   - scripts/install-test.sh: docs/OPERATIONS.md's install steps followed
#     into a fresh prefix, the installed unit checked by `systemd-analyze
#     verify` where systemd-analyze exists (skipped with the reason where it
#     does not), the installed binary started from another directory as the
#     unit starts it, /readyz and the ONNX Runtime checked.
# server/tests/deploy.rs (run by `cargo test`) holds the rules and the
# dashboard to the metrics a real server exports.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "check-deploy: installing promtool (Debian package prometheus)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null \
            || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null; }
    else
        echo "check-deploy: promtool is missing and cannot be installed here (needs root and apt-get: apt-get install prometheus)" >&2
        exit 1
    fi
fi
promtool check rules deploy/prometheus/recwal-rules.yml
(cd deploy/prometheus && promtool test rules recwal-rules.test.yml)

scripts/install-test.sh
echo "check-deploy: ok"
