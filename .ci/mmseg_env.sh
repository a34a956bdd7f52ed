#!/usr/bin/env bash
# The mmseg test group: installs the [mmseg] extra's dependencies, then runs `python3 -m pytest -q -m mmseg`.
#
# mmsegmentation 1.2 imports mmcv 2.1's compiled ops, and PyPI has no mmcv 2.1 wheel for current torch and
# Python (OpenMMLab's prebuilt wheels stop at torch 2.1), so mmcv is built from its source release, CPU ops
# only, once per (mmcv version, Python, torch version), and the wheel is kept in a cache that outlives the
# clone:
#   VISION_MAMBA_WHEEL_CACHE   cache root (default ~/.cache/vision_mamba/wheels), one folder per key,
#                              e.g. mmcv-2.1.0-cp311-torch2.15.0+cu132/mmcv-2.1.0-cp311-cp311-linux_x86_64.whl
#   MAX_JOBS                   parallel compile jobs (default: the CPU count)
# The build runs in a throw-away virtual environment that sees the system's torch (mmcv's setup.py needs
# setuptools < 70 for pkg_resources, the system keeps its own) and lands in the cache by an atomic rename,
# so an interrupted or concurrent build never leaves a half-written wheel behind.
# Run from anywhere; any failing step fails the script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A venv that sees the packages of the python3 running this script -- torch above all -- behind its own
# (`--system-site-packages` alone would show the base interpreter's, not those of a venv CI runs in).
see_parent_packages() {
    python3 -m venv --system-site-packages "$1"
    python3 -c "import site; print('\\n'.join(site.getsitepackages()))" \
        > "$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_parent_env.pth"
}


MMCV_VERSION=2.1.0
step() { printf '\n==> %s\n' "$*"; }

cache_root=${VISION_MAMBA_WHEEL_CACHE:-$HOME/.cache/vision_mamba/wheels}
key=$(python3 -c "import sys, torch; print(f'mmcv-$MMCV_VERSION-cp{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__}')")
wheel_dir=$cache_root/$key

cached_wheel() { compgen -G "$wheel_dir/mmcv-$MMCV_VERSION-*.whl" | head -n 1; }

if [ -z "$(cached_wheel)" ]; then
    step "building mmcv $MMCV_VERSION with CPU ops for $key (once per key; ~10 min on 2 idle cores)"
    mkdir -p "$cache_root"
    tmp=$(mktemp -d "$cache_root/.build-XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    see_parent_packages "$tmp/venv"
    "$tmp/venv/bin/python" -m pip install -q ninja wheel "setuptools<70"
    "$tmp/venv/bin/python" -m pip download -q --no-deps --no-binary :all: --no-build-isolation \
        "mmcv==$MMCV_VERSION" -d "$tmp"
    tar -xzf "$tmp/mmcv-$MMCV_VERSION.tar.gz" -C "$tmp"
    src=$tmp/mmcv-$MMCV_VERSION
    # mmcv 2.1's setup.py pins -std=c++17; torch >= 2.10's headers refuse anything below C++20
    aten_h=$(python3 -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'include', 'ATen', 'ATen.h'))")
    if grep -q "C++20 or later" "$aten_h"; then
        grep -q "'-std=c++17'" "$src/setup.py" || { echo "mmcv setup.py no longer has -std=c++17: check the patch" >&2; exit 1; }
        sed -i "s/extra_compile_args\['cxx'\] = \['-std=c++17'\]/extra_compile_args['cxx'] = ['-std=c++20']/" "$src/setup.py"
    fi
    MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
        "$tmp/venv/bin/python" -m pip wheel --no-build-isolation --no-deps "$src" -w "$tmp/wheel"
    mkdir -p "$(dirname "$wheel_dir")"
    # atomic: rename(2) of the finished folder; if a concurrent build got there first, keep its wheel
    mv -T "$tmp/wheel" "$wheel_dir" 2>/dev/null || [ -n "$(cached_wheel)" ]
    rm -rf "$tmp"
    trap - EXIT
else
    step "reusing the cached mmcv wheel $(cached_wheel)"
fi

step "install mmcv (cached wheel), then the project with the [mmseg] extra (mmengine, mmsegmentation 1.2.2, ...)"
python3 -m pip install "$(cached_wheel)"
python3 -m pip install -e ".[mmseg]"
# the nuclei demo's image ships inside stardist; only its data files are read (no TensorFlow)
python3 -m pip install --no-deps stardist
python3 -c "import mmcv, mmcv._ext, mmseg, mmseg.models; print(f'mmcv {mmcv.__version__} with compiled ops, mmseg {mmseg.__version__}')"

step "tests: python3 -m pytest -q -m mmseg"
python3 -m pytest -q -m mmseg
