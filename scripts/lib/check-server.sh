# Sourced (not run) by the checks that drive a real `recwal serve` over
# HTTP: scripts/schemathesis.sh, python-client-check.sh, swagger-ui-check.sh.
#
# start_check_server NAME builds the debug binary and starts it on a free
# loopback port with a fresh data dir and a random bearer token, and sets
#   WORK        a temporary directory (server.log, data/; the caller's files)
#   TOKEN       the token the server requires
#   BASE        http://127.0.0.1:PORT
#   SERVER_PID  the server's process
# An EXIT trap stops the server and removes $WORK, unless KEEP=1 (a failing
# check sets it to keep the evidence).

start_check_server() {
    local name="$1" first
    cargo build --quiet --locked -p recwal-server --bin recwal
    local bin="${CARGO_TARGET_DIR:-target}/debug/recwal"
    WORK="$(mktemp -d)"
    TOKEN="$name-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
    SERVER_PID=""
    CHECK_NAME="$name"
    trap stop_check_server EXIT
    if [[ -z "${ORT_DYLIB_PATH:-}" && -f .onnxruntime/lib/libonnxruntime.so ]]; then
        export ORT_DYLIB_PATH="$PWD/.onnxruntime/lib/libonnxruntime.so"
    fi
    # The first line on stdout names the address; the rest is the JSON log.
    mkfifo "$WORK/stdout"
    "$bin" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --log-format json --token "$TOKEN" \
        >"$WORK/stdout" 2>"$WORK/server.log" &
    SERVER_PID=$!
    exec 3<"$WORK/stdout"
    read -r -t 60 first <&3
    cat <&3 >>"$WORK/server.log" &
    BASE="http://${first#listening on }"
}

stop_check_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ "${KEEP:-0}" == 1 ]]; then
        echo "$CHECK_NAME: kept $WORK (server log and the check's files)" >&2
    else
        rm -rf "$WORK"
    fi
}
