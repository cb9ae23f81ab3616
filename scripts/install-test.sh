#!/usr/bin/env bash
# Follows docs/OPERATIONS.md's install block, as written, into a fresh
# temporary DESTDIR (no root needed: useradd, chown, chgrp and systemctl are
# echoed, not run), verifies the installed unit with `systemd-analyze
# verify` (any warning fails; skipped where systemd-analyze is missing),
# then starts the installed binary the way the unit does (its ExecStart=,
# its EnvironmentFile= with absolute paths moved under DESTDIR) from `/`,
# and checks /readyz, a model-ranked recommendation and
# recwal_model_runtime_loaded 1.
#
# RECWAL_BIN: the binary to install (default: the debug build, built here
# if missing). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

if [ -z "${RECWAL_BIN:-}" ]; then
    cargo build --locked -p recwal-server --quiet
    RECWAL_BIN="$root/target/debug/recwal"
fi
export RECWAL_BIN
if [ ! -e .onnxruntime/lib/libonnxruntime.so ]; then
    scripts/install-onnxruntime.sh >/dev/null
fi

DESTDIR="$(mktemp -d "${TMPDIR:-/tmp}/recwal-install.XXXXXX")"
export DESTDIR
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$DESTDIR"
}
trap cleanup EXIT

# The block between the markers, exactly as the document shows it.
block="$(awk '/<!-- install:begin/ {on=1; next} /<!-- install:end/ {on=0} on' docs/OPERATIONS.md | sed '/^```/d')"
[ -n "$block" ] || { echo "install-test: no install block in docs/OPERATIONS.md" >&2; exit 1; }
(
    useradd() { echo "install-test: skipped (root): useradd $*"; }
    chown() { echo "install-test: skipped (root): chown $*"; }
    chgrp() { echo "install-test: skipped (root): chgrp $*"; }
    systemctl() { echo "install-test: skipped (systemd): systemctl $*"; }
    set -euo pipefail
    eval "$block"
)

unit="$DESTDIR/etc/systemd/system/recwal.service"
for installed in usr/local/bin/recwal usr/local/lib/recwal/libonnxruntime.so etc/systemd/system/recwal.service \
    etc/recwal/recwal.env var/lib/recwal; do
    [ -e "$DESTDIR/$installed" ] || { echo "install-test: the block did not install $installed" >&2; exit 1; }
done

if command -v systemd-analyze >/dev/null 2>&1; then
    # verify --root needs the system's own units (targets, slices) in the root.
    for dir in /usr/lib/systemd/system /lib/systemd/system; do
        if [ -d "$dir" ]; then
            mkdir -p "$DESTDIR/usr/lib/systemd"
            cp -r "$dir" "$DESTDIR/usr/lib/systemd/"
            break
        fi
    done
    if ! report="$(systemd-analyze verify --man=no --generators=no --root="$DESTDIR" "$unit" 2>&1)" || [ -n "$report" ]; then
        echo "install-test: systemd-analyze verify failed:" >&2
        echo "$report" >&2
        exit 1
    fi
    echo "install-test: systemd-analyze verify: clean"
else
    echo "install-test: SKIPPED systemd-analyze verify: systemd-analyze is not installed"
fi

# Start it as the unit does: its ExecStart= with the EnvironmentFile=.
exec_start="$(sed -n 's/^ExecStart=//p' "$unit")"
env_file="$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit")"
binary="${exec_start%% *}"
arguments="${exec_start#"$binary"}"
environment=()
while IFS= read -r line; do
    case "$line" in '' | '#'*) continue ;; esac
    name="${line%%=*}"
    value="${line#*=}"
    # Absolute paths live under DESTDIR here.
    case "$value" in /*) value="$DESTDIR$value" ;; esac
    # A free port: the configured one may be taken on this machine.
    [ "$name" = RECWAL_LISTEN ] && value="127.0.0.1:0"
    environment+=("$name=$value")
done < "$DESTDIR$env_file"
out="$DESTDIR/server.out"
# From another working directory: nothing may depend on the repository's.
# shellcheck disable=SC2086
(cd / && exec env -i PATH="$PATH" "${environment[@]}" "$DESTDIR$binary" $arguments >"$out" 2>"$DESTDIR/server.err") &
server_pid=$!

python3 - "$out" "$root/tests/fixtures/models/linear_v1.onnx" <<'PY'
import json, sys, time, urllib.request, urllib.error

out, model = sys.argv[1], sys.argv[2]
deadline = time.time() + 60
addr = None
while addr is None:
    line = open(out).readline()
    if line.startswith("listening on "):
        addr = line.split()[-1]
    elif time.time() > deadline:
        sys.exit("install-test: the installed server never listened")
    else:
        time.sleep(0.05)

def call(method, path, body=None, kind="application/json"):
    request = urllib.request.Request(f"http://{addr}{path}", data=body, method=method)
    if body is not None:
        request.add_header("content-type", kind)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()

while call("GET", "/readyz")[0] != 200:
    if time.time() > deadline:
        sys.exit(f"install-test: /readyz never 200: {call('GET', '/readyz')}")
    time.sleep(0.05)
status, body = call("POST", "/admin/models", open(model, "rb").read(), "application/octet-stream")
assert status == 201, (status, body)
status, body = call("POST", "/admin/models/1/activate")
assert status == 200, ("the runtime did not load from the installed path", status, body)
events = {"events": [{"user": "a", "item": "x", "kind": "click"}, {"user": "b", "item": "x", "kind": "click"},
                     {"user": "b", "item": "y", "kind": "click"}], "durability": "always"}
status, body = call("POST", "/v1/events", json.dumps(events).encode())
assert status == 200, (status, body)
status, body = call("GET", "/v1/users/a/recommend?n=3")
ranking = json.loads(body)["ranking"]
assert status == 200 and ranking == {"kind": "model", "version": 1}, (status, body)
status, body = call("GET", "/metrics")
assert status == 200 and b"\nrecwal_model_runtime_loaded 1\n" in body, body[:2000]
print(f"install-test: the installed server on {addr} is ready and ranks with the installed runtime")
PY
echo "install-test: ok"
