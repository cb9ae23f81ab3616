#!/usr/bin/env bash
# Installs the ONNX Runtime shared library (libonnxruntime.so) that recwal loads
# at run time (ORT_DYLIB_PATH), taken from the official PyPI wheel, so only
# python3 and pip are needed (no unzip, no curl, no GitHub access).
#
#   export ORT_DYLIB_PATH="$(scripts/install-onnxruntime.sh)"
#
# CPU (default): `onnxruntime==1.31.1` into .onnxruntime/ (git-ignored).
#   .onnxruntime/lib/libonnxruntime.so.1.31.1   the library from the wheel
#   .onnxruntime/lib/libonnxruntime.so          symlink to it
#   .onnxruntime/lib/libonnxruntime.so.1        symlink to it (the SONAME)
#   .onnxruntime/VERSION                        the pinned version
#
# GPU (RECWAL_ORT_GPU=1): `onnxruntime-gpu==1.31.1` into .onnxruntime-gpu/
# (git-ignored), same layout, plus the provider libraries the CUDA execution
# provider dlopen()s from the directory of libonnxruntime.so:
#   libonnxruntime_providers_shared.so, libonnxruntime_providers_cuda.so
#   (and libonnxruntime_providers_tensorrt.so if the wheel has it).
# The GPU wheel is large (~245 MB download, ~300 MB unpacked here) and does NOT
# bundle CUDA: libonnxruntime_providers_cuda.so links against the CUDA 13
# runtime (libcudart.so.13, libcublas.so.13, libcublasLt.so.13,
# libcurand.so.10, plus the driver's libcuda.so.1) and loads cuDNN 9
# (libcudnn*.so.9), cuFFT and NVRTC on demand. Without a system CUDA 13 +
# cuDNN 9 install they come from PyPI, as the wheel's own `cuda`/`cudnn`
# extras list them:
#   python3 -m pip install nvidia-cuda-runtime~=13.0 nvidia-cuda-nvrtc~=13.0 \
#       nvidia-cufft~=12.0 nvidia-curand~=10.0 nvidia-cudnn-cu13~=9.0
# (nvidia-cudnn-cu13 pulls in nvidia-cublas; `pip install
# "onnxruntime-gpu[cuda,cudnn]==1.31.1"` installs the same set). These wheels
# put their libraries in site-packages/nvidia/cu13/lib (cuDNN in
# site-packages/nvidia/cudnn/lib); add those directories to LD_LIBRARY_PATH.
# Expect about 1 GB more: nvidia-cublas ~445 MB, nvidia-cudnn-cu13 ~520 MB.
# Without them ORT still loads and falls back to the CPU provider.
#
# Idempotent: when lib/libonnxruntime.so exists and VERSION matches the pin,
# nothing is downloaded. The last line of stdout is always the absolute path
# of libonnxruntime.so; every other message goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION="1.31.1"

if [[ "${RECWAL_ORT_GPU:-0}" == "1" ]]; then
    PACKAGE="onnxruntime-gpu"
    TARGET_DIR=".onnxruntime-gpu"
    EXTRA_LIBS=(libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so
        libonnxruntime_providers_tensorrt.so)
else
    PACKAGE="onnxruntime"
    TARGET_DIR=".onnxruntime"
    EXTRA_LIBS=()
fi
LIB_DIR="$TARGET_DIR/lib"
LIB="$LIB_DIR/libonnxruntime.so"

log() { echo "install-onnxruntime: $*" >&2; }

if [[ -e "$LIB" && -f "$TARGET_DIR/VERSION" && "$(cat "$TARGET_DIR/VERSION")" == "$ORT_VERSION" ]]; then
    log "$PACKAGE $ORT_VERSION already installed in $TARGET_DIR"
    echo "$(pwd)/$LIB"
    exit 0
fi

TMP_DIR="$(mktemp -d)"
trap 'rm -rf "$TMP_DIR"' EXIT

log "downloading $PACKAGE==$ORT_VERSION from PyPI"
# First try the wheel for the running interpreter; if there is none for its
# tag (e.g. a CPython too new or too old for this release), ask for the
# manylinux CPython 3.11 wheel explicitly: the shared library inside does not
# depend on the Python version.
if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --dest "$TMP_DIR" "$PACKAGE==$ORT_VERSION" >&2; then
    log "no wheel for this python; retrying for CPython 3.11 manylinux x86_64"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --python-version 3.11 --implementation cp --abi cp311 \
        --dest "$TMP_DIR" "$PACKAGE==$ORT_VERSION" >&2
fi

shopt -s nullglob
WHEELS=("$TMP_DIR"/*.whl)
shopt -u nullglob
if [[ ${#WHEELS[@]} -ne 1 ]]; then
    log "expected one $PACKAGE wheel in $TMP_DIR, found ${#WHEELS[@]}"
    ls -l "$TMP_DIR" >&2
    exit 1
fi
WHEEL="${WHEELS[0]}"
log "unpacking $(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1))"
python3 -m zipfile -e "$WHEEL" "$TMP_DIR/wheel" >&2

CAPI="$TMP_DIR/wheel/onnxruntime/capi"
shopt -s nullglob
REAL=("$CAPI"/libonnxruntime.so.*)
shopt -u nullglob
if [[ ${#REAL[@]} -ne 1 ]]; then
    log "expected one onnxruntime/capi/libonnxruntime.so.* in the wheel, found ${#REAL[@]}; it holds:"
    python3 -m zipfile -l "$WHEEL" | grep -E '\.so(\.|$)' >&2 || python3 -m zipfile -l "$WHEEL" >&2
    exit 1
fi
REAL_NAME="$(basename "${REAL[0]}")"

# Replace any earlier (other version, partial) install as a whole.
rm -rf "$TARGET_DIR"
mkdir -p "$LIB_DIR"
cp "${REAL[0]}" "$LIB_DIR/$REAL_NAME"
ln -s "$REAL_NAME" "$LIB"
# The library's SONAME is libonnxruntime.so.1; provide it too for the loader.
if [[ "$REAL_NAME" != "libonnxruntime.so.1" ]]; then
    ln -s "$REAL_NAME" "$LIB_DIR/libonnxruntime.so.1"
fi
for extra in ${EXTRA_LIBS[@]+"${EXTRA_LIBS[@]}"}; do
    if [[ -f "$CAPI/$extra" ]]; then
        cp "$CAPI/$extra" "$LIB_DIR/$extra"
        log "installed $extra"
    else
        log "note: $extra not in the wheel"
    fi
done
echo "$ORT_VERSION" >"$TARGET_DIR/VERSION"

log "installed $PACKAGE $ORT_VERSION into $TARGET_DIR"
echo "$(pwd)/$LIB"
