#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment: ${ESPNET_CLS_VENV:-.venv}.
# Idempotent: a stamp file records the hash of what was installed; nothing is
# reinstalled while tools/requirements.txt and setup.py are unchanged.
#
#   tools/install.sh            # create/refresh .venv
#   ESPNET_CLS_VENV=/path tools/install.sh
#
# To use an existing environment instead (e.g. your own CUDA torch), set
# ESPNET_CLS_SKIP_INSTALL=true and install the package there yourself:
#   pip install -e '.[demo,export,test]' && pip install --no-deps tinysoundfont
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${root}"

if [ "${ESPNET_CLS_SKIP_INSTALL:-false}" = true ]; then
    echo "tools/install.sh: ESPNET_CLS_SKIP_INSTALL=true, using the current environment" >&2
    exit 0
fi

venv=${ESPNET_CLS_VENV:-${root}/.venv}
python=${PYTHON:-python3}
stamp="${venv}/.espnet_cls_installed"
want=$(cat tools/requirements.txt setup.py tools/install.sh | sha256sum | cut -d' ' -f1)

if [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${want}" ]; then
    exit 0
fi

echo "tools/install.sh: setting up ${venv} (first run takes a few minutes)" >&2
if [ ! -x "${venv}/bin/python" ]; then
    "${python}" -m venv "${venv}"
fi
# (some machines' pip configs name package indexes that are not there: drop those warnings)
pip_() {
    "${venv}/bin/python" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "WARNING: Location '" >&2)
}
pip_ install --upgrade pip
pip_ install -r tools/requirements.txt
# tinysoundfont renders the General MIDI SoundFont of pretty_midi for the demo corpora.
# --no-deps: its optional dependency pyaudio needs PortAudio headers and does not build here.
pip_ install --no-deps tinysoundfont==0.3.7
pip_ install --no-deps -e .
echo "${want}" > "${stamp}"
echo "tools/install.sh: done ($("${venv}/bin/python" -c 'import torch; print("torch", torch.__version__)'))" >&2
