# shellcheck shell=bash
# Sourced by cls.sh, run.sh and every job (slurm.pl exports only PATH, so each job
# sets itself up here). Activates the venv, puts utils/ and pyscripts/ on PATH.
MAIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export MAIN_ROOT
venv=${ESPNET_CLS_VENV:-${MAIN_ROOT}/.venv}
if [ -f "${venv}/bin/activate" ]; then
    # shellcheck disable=SC1091
    . "${venv}/bin/activate"
fi
export PATH="${MAIN_ROOT}/utils:${MAIN_ROOT}/pyscripts/utils:${PATH}"
export PYTHONPATH="${MAIN_ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
export LC_ALL=C
export PYTHONIOENCODING=UTF-8
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
unset venv
