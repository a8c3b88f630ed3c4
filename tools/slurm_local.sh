#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests of utils/slurm.pl and of Slurm training (CI).
#
#   tools/slurm_local.sh up      # install (Debian packages, if missing), configure, start; wait until idle
#   tools/slurm_local.sh check   # health check: a 4-task sbatch array and an srun step
#   tools/slurm_local.sh down    # stop the daemons (by pid file)
#   tools/slurm_local.sh status  # print sinfo, exit 0 when the node is usable
#
# Needs root and Debian/Ubuntu (apt).  Works without systemd: the daemons are started by hand.
# Everything listens on loopback only (NodeAddr=127.0.0.1).  Partitions: "cpu" (default, what
# conf/slurm.conf asks for) and "shared" (what Kaldi's built-in slurm.pl config asks for); no "gpu"
# partition, so --gpu N>0 fails at submission.  CPUs and RealMemory come from `slurmd -C`.
# Low-latency settings (batch_sched_delay=0, MinJobAge=10, short timeouts): see
# /work/shared/notes/slurm_ci.md.  Idempotent: "up" on a running healthy cluster does nothing.
set -euo pipefail

conf=/etc/slurm/slurm.conf
run_dir=/run
log_dir=/var/log/slurm
state_dir=/var/lib/slurm

log() { echo "slurm_local.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

pid_alive() {  # pid_alive <pidfile>
    local p
    p=$(cat "$1" 2>/dev/null) || return 1
    [ -n "${p}" ] && kill -0 "${p}" 2>/dev/null
}

node_name() { hostname -s; }

node_state() { sinfo -h -n "$(node_name)" -o %T 2>/dev/null | head -n1; }

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null 2>&1 || missing+=(slurmctld)
    command -v slurmd >/dev/null 2>&1 || missing+=(slurmd)
    command -v sbatch >/dev/null 2>&1 || missing+=(slurm-client)
    command -v munged >/dev/null 2>&1 || missing+=(munge)
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "installing ${missing[*]} needs root"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} yourself"
    log "installing ${missing[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null
}

write_config() {
    local host cpus mem tmp
    host=$(node_name)
    read -r cpus mem < <(slurmd -C | awk '{for (i = 1; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}}
                                        END {print v["CPUs"], v["RealMemory"]}')
    [ -n "${cpus}" ] && [ -n "${mem}" ] || die "cannot read CPUs/RealMemory from 'slurmd -C'"
    mem=$((mem > 1024 ? mem - 512 : mem))
    mkdir -p "$(dirname "${conf}")"
    tmp=$(mktemp)
    cat >"${tmp}" <<EOF
# Written by tools/slurm_local.sh: a one-node, loopback-only cluster for tests.
ClusterName=local
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=${state_dir}/slurmctld
SlurmdSpoolDir=${state_dir}/slurmd
SlurmctldPidFile=${run_dir}/slurmctld.pid
SlurmdPidFile=${run_dir}/slurmd.pid
SlurmctldLogFile=${log_dir}/slurmctld.log
SlurmdLogFile=${log_dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/builtin
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=5
TCPTimeout=2
InactiveLimit=0
KillWait=2
Waittime=0
MinJobAge=10
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=shared Nodes=ALL MaxTime=INFINITE State=UP
EOF
    if [ -f "${conf}" ] && cmp -s "${tmp}" "${conf}"; then
        rm -f "${tmp}"
        return 1  # unchanged
    fi
    install -m 644 "${tmp}" "${conf}"
    rm -f "${tmp}"
    log "wrote ${conf} (node ${host}, CPUs=${cpus}, RealMemory=${mem})"
    return 0
}

start_daemons() {
    mkdir -p "${state_dir}/slurmctld" "${state_dir}/slurmd" "${log_dir}" /run/munge
    chown munge:munge /run/munge
    if ! pid_alive /run/munge/munged.pid; then
        [ -f /etc/munge/munge.key ] || die "/etc/munge/munge.key is missing (reinstall munge)"
        runuser -u munge -- /usr/sbin/munged
        log "started munged"
    fi
    munge -n | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"
    if ! pid_alive "${run_dir}/slurmctld.pid"; then
        slurmctld -c
        log "started slurmctld"
    fi
    if ! pid_alive "${run_dir}/slurmd.pid"; then
        slurmd
        log "started slurmd"
    fi
}

wait_idle() {
    local i state
    for i in $(seq 1 300); do
        state=$(node_state || true)
        case "${state}" in
            idle | mixed | allocated) return 0 ;;
            down* | drain*)
                [ $((i % 10)) -eq 1 ] && scontrol update nodename="$(node_name)" state=resume 2>/dev/null || true ;;
        esac
        sleep 0.1
    done
    die "node $(node_name) not idle after 30 s (state '${state}'); see ${log_dir}/slurmctld.log and slurmd.log"
}

stop_pid() {  # stop_pid <pidfile>: SIGTERM, wait up to 10 s, then SIGKILL
    local p i
    p=$(cat "$1" 2>/dev/null) || return 0
    [ -n "${p}" ] || return 0
    kill "${p}" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        kill -0 "${p}" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "${p}" 2>/dev/null || true
}

cmd_up() {
    local t0 changed=false
    t0=$(date +%s)
    install_packages
    if write_config; then changed=true; fi
    if ${changed} && { pid_alive "${run_dir}/slurmctld.pid" || pid_alive "${run_dir}/slurmd.pid"; }; then
        log "configuration changed: restarting slurmd and slurmctld"
        stop_pid "${run_dir}/slurmd.pid"
        stop_pid "${run_dir}/slurmctld.pid"
    fi
    start_daemons
    wait_idle
    log "up: node $(node_name) is $(node_state) ($(($(date +%s) - t0)) s)"
}

cmd_check() {
    local d j i out
    command -v sinfo >/dev/null 2>&1 || die "Slurm is not installed (run: $0 up)"
    d=$(mktemp -d)
    sinfo -h -o '%P %T %N'
    # shellcheck disable=SC2016  # expanded by the job, not here
    j=$(sbatch --parsable --array=1-4 -o "${d}/o_%a.txt" --wrap 'echo $SLURM_ARRAY_TASK_ID')
    for i in $(seq 1 300); do
        squeue -h -j "${j}" 2>/dev/null | grep -q . || break
        sleep 0.1
    done
    out=$(cat "${d}"/o_1.txt "${d}"/o_2.txt "${d}"/o_3.txt "${d}"/o_4.txt 2>/dev/null | tr -d '\n')
    rm -rf "${d}"
    [ "${out}" = 1234 ] || die "array job ${j} wrote '${out}', expected 1234"
    [ "$(srun -n 2 hostname | wc -l)" = 2 ] || die "srun -n 2 failed"
    log "check: OK (sbatch array + srun)"
}

cmd_down() {
    scancel --quiet --full -u "$(id -un)" 2>/dev/null || true
    stop_pid "${run_dir}/slurmd.pid"
    stop_pid "${run_dir}/slurmctld.pid"
    stop_pid /run/munge/munged.pid
    log "down"
}

case "${1:-}" in
    up) cmd_up ;;
    check) cmd_check ;;
    down) cmd_down ;;
    status)
        command -v sinfo >/dev/null 2>&1 || die "Slurm is not installed"
        sinfo
        case "$(node_state)" in idle | mixed | allocated) exit 0 ;; *) exit 1 ;; esac
        ;;
    *)
        echo "Usage: $0 up|check|down|status" >&2
        exit 2
        ;;
esac
