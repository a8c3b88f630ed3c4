#!/usr/bin/env bash
# Set up .venv if needed (tools/install.sh), then run the checks and the test suite:
#   lint (shellcheck on every shell script, ruff on the Python), then pytest.
#
#   ./test.sh                   # default suite (fast; slow tests deselected)
#   ./test.sh -m slow           # only the slow ones
#   ./test.sh tests/test_x.py   # extra args go to pytest
set -euo pipefail
cd "$(dirname "$0")"

tools/install.sh
# shellcheck disable=SC1091
. ./path.sh

echo "== shellcheck" >&2
mapfile -t shell_files < <(
    { git ls-files '*.sh' 'utils/*' 'local/*' 'tools/*' '.ci/run' 2>/dev/null || true; } \
        | sort -u | while read -r f; do
            [ -f "$f" ] || continue
            case "$f" in *.sh|.ci/run) echo "$f" ;; *) head -n1 "$f" | grep -qE '^#!.*\b(ba)?sh\b' && echo "$f" ;; esac
        done || true)
if [ ${#shell_files[@]} -gt 0 ]; then
    shellcheck -x -P SCRIPTDIR "${shell_files[@]}"
fi
echo "== ruff" >&2
ruff check .

echo "== pytest" >&2
if [ $# -eq 0 ]; then
    set -- -m "not slow and not slurm and not espnet"  # .ci/run runs the slurm and espnet ones
fi
python -m pytest "$@"
