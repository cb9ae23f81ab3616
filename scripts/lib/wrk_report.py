"""Reads wrk's `--latency` reports (scripts/lib/wrk.sh writes them), for the
tables of scripts/load.sh and scripts/cluster-bench.sh."""
import re


def ms(text):
    """A wrk duration (`812.00us`, `1.98ms`, `1.20s`) in milliseconds."""
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse(work, name):
    """(requests/s, p50 ms, p99 ms) of the report `work`/`name`.txt."""
    text = open(f"{work}/{name}.txt").read()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
    return rate, p50, p99
