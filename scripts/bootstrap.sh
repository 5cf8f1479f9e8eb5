# Sourced by the scripts in this folder: makes sure uv and the locked environment (.venv) exist.
# Everything comes from PyPI; nothing needs to be installed on the machine beforehand.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v uv >/dev/null 2>&1; then
    # pip --user, else a plain pip, else (a Python whose pip refuses both: PEP 668) a venv of its own
    tools="$HOME/.cache/module-engine/uv-0.13.9"
    python3 -m pip install --quiet --user "uv==0.13.9" 2>/dev/null \
        || python3 -m pip install --quiet "uv==0.13.9" 2>/dev/null \
        || { python3 -m venv "$tools" && "$tools/bin/pip" install --quiet "uv==0.13.9"; }
    export PATH="$HOME/.local/bin:$tools/bin:$PATH"
fi
uv sync --quiet --frozen --all-extras
export GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false
