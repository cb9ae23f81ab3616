# Sourced (not run) by the load scripts: scripts/load.sh, scripts/cluster-bench.sh.
# Expects `say` and `fail` functions and `$seconds` (per case).

# ensure_wrk: wrk (Debian's package) installed with apt when missing; curl
# needed beside it.
ensure_wrk() {
    if ! command -v wrk >/dev/null; then
        say "installing wrk (apt)"
        if [[ $(id -u) -eq 0 ]]; then apt-get install -y -q wrk >&2; else sudo apt-get install -y -q wrk >&2; fi
    fi
    command -v curl >/dev/null || fail "needs curl"
}

# wrk_case NAME URL CONNECTIONS SCRIPT OUT_DIR: wrk --latency for $seconds
# with scripts/load/SCRIPT (2 threads, 1 for a single connection), its
# report in OUT_DIR/NAME.txt; any non-2xx answer or socket error fails.
wrk_case() {
    local name="$1" url="$2" connections="$3" script="$4" out="$5" threads=2
    [[ $connections -lt 2 ]] && threads=1
    say "$name: $connections connections, ${seconds} s"
    RECWAL_LOAD_RUN="$name-$$" wrk --latency -t"$threads" -c"$connections" -d"${seconds}s" --timeout 10s \
        -s "scripts/load/$script" "$url" >"$out/$name.txt"
    if grep -qE 'Non-2xx|Socket errors' "$out/$name.txt"; then
        cat "$out/$name.txt" >&2
        fail "$name: errors under load"
    fi
}
