#!/usr/bin/env bash
# Creates .venv-ranker/ (repo root, git-ignored) with the pinned packages of
# scripts/ranker/train.py from PyPI and prints its python's path. No-op when
# it is there with the same requirements.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.venv-ranker
stamp="$venv/.requirements"
if [[ -x "$venv/bin/python" && -f "$stamp" ]] && cmp -s "$stamp" scripts/ranker/requirements.txt; then
    echo "$PWD/$venv/bin/python"
    exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/ranker/requirements.txt >&2
cp scripts/ranker/requirements.txt "$stamp"
echo "$PWD/$venv/bin/python"
