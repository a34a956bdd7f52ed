#!/usr/bin/env bash
# The nnU-Net test group: the stock nnunetv2 package (extra [nnunet]) finding and building our U-Mamba trainers.
#
# nnunetv2 pins timm < 1.0.23 (through dynamic-network-architectures) while the rest of the project runs on
# current timm, so the group gets its own virtual environment: it sees the system's packages (torch is not
# installed twice) and shadows timm with nnunetv2's pin.  Run from anywhere; any failing step fails the script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A venv that sees the packages of the python3 running this script -- torch above all -- behind its own
# (`--system-site-packages` alone would show the base interpreter's, not those of a venv CI runs in).
see_parent_packages() {
    python3 -m venv --system-site-packages "$1"
    python3 -c "import site; print('\\n'.join(site.getsitepackages()))" \
        > "$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_parent_env.pth"
}


venv=${VISION_MAMBA_NNUNET_VENV:-$HOME/.cache/vision_mamba/nnunet-venv}
printf '\n==> nnU-Net venv %s: python3 -m pip install -e ".[nnunet]"\n' "$venv"
see_parent_packages "$venv"
"$venv/bin/python" -m pip install -q -e ".[nnunet]"
"$venv/bin/python" -c "import nnunetv2, timm; print(f'nnunetv2 with timm {timm.__version__}')"

printf '\n==> tests: python -m pytest -q -m nnunet (in that venv)\n'
rc=0
"$venv/bin/python" -m pytest -q -m nnunet -p no:cacheprovider || rc=$?
if [ "$rc" -eq 5 ]; then echo "nnunet group: no tests collected" >&2; exit 1; fi
exit "$rc"
