#!/usr/bin/env bash
# Install real ESPnet 202611 into its own venv, for the oracle tests (pytest -m espnet):
#   ${ESPNET_ORACLE_VENV:-tools/espnet_oracle_venv}   (never the project's .venv)
#
#   tools/install_espnet_oracle.sh
#   ESPNET_ORACLE_VENV=/path tools/install_espnet_oracle.sh
#
# espnet==202611's wheel says Requires-Python >=3.12, but its code runs on 3.11: it is installed
# with --no-deps --ignore-requires-python, then its runtime dependencies (the list of the wheel's
# METADATA, plus torcheval/scikit-learn for the cls task and matplotlib/tensorboard for its
# trainer). Idempotent: a stamp file records what was installed. About 2-6 minutes, ~5.7 GB.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${ESPNET_ORACLE_VENV:-${root}/tools/espnet_oracle_venv}
python=${PYTHON:-python3}
stamp="${venv}/.espnet_oracle_installed"
want="espnet==202611 $(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"

ready() {  # ESPnet 202611's cls task imports there
    [ -x "${venv}/bin/python" ] && "${venv}/bin/python" -c \
        "import espnet2, espnet2.tasks.cls; assert espnet2.__version__ == '202611', espnet2.__version__" >/dev/null 2>&1
}
if { [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${want}" ] && ready; } || { [ ! -f "${stamp}" ] && ready; }; then
    echo "tools/install_espnet_oracle.sh: ${venv} is ready" >&2
    exit 0
fi
case "$(cd "$(dirname "${venv}")" 2>/dev/null && pwd)/$(basename "${venv}")" in
    "${root}/.venv") echo "tools/install_espnet_oracle.sh: refusing to install ESPnet into the project's .venv" >&2; exit 1 ;;
esac

echo "tools/install_espnet_oracle.sh: installing ESPnet 202611 into ${venv}" >&2
if [ ! -x "${venv}/bin/python" ]; then
    "${python}" -m venv "${venv}"
fi
pip_() {  # without PYTHONPATH: path.sh puts this checkout (and its espnet_cls.egg-info) on it, and pip
    # would then check espnet_cls's requirements against the oracle venv
    env -u PYTHONPATH "${venv}/bin/python" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "WARNING: Location '" >&2)
}
pip_ install torch==2.11.0 torchaudio==2.11.0
pip_ install --no-deps --ignore-requires-python espnet==202611
pip_ install "setuptools<82,>=77.0.3" "configargparse>=1.2.1" packaging typeguard humanfriendly \
    "scipy>=1.4.1" "numpy>=2.0.0" "PyYAML>=5.1.2" "soundfile>=0.10.2" "omniio>=0.1.2" \
    filelock "sentencepiece==0.2.1" "librosa>=0.10.2" torch-complex einops "tqdm>=4.64" \
    espnet-model-zoo "hydra-core<1.4,>=1.3" "omegaconf<2.4,>=2.3" huggingface-hub \
    torch==2.11.0 torchaudio==2.11.0 torcheval scikit-learn matplotlib tensorboard
"${venv}/bin/python" -c "import espnet2.tasks.cls" 2> >(grep -v "Flash Attention" >&2)
echo "${want}" > "${stamp}"
echo "tools/install_espnet_oracle.sh: ESPnet oracle ready: ${venv}" >&2
