#!/bin/sh
# tests/slurm/run.sh — `make test-slurm`: a real single-node Slurm runs a sweep's slurm.sh.
# Starts munged, slurmctld and slurmd (Debian slurm-wlm + munge) on this machine with a
# generated slurm.conf under a temporary directory and non-default ports, submits the
# tiny example sweep as a job array with `sbatch --wait`, checks that every job is done
# (and that a second submission finds nothing to do), then stops the daemons it started
# (by their pids). Skips with a message when the packages are absent. Not in `make test`:
# it needs root (slurmd) and takes about a minute.
. tests/lib.sh
export OPENBLAS_NUM_THREADS=1

for b in munged mungekey slurmctld slurmd sbatch; do
    if ! command -v $b >/dev/null 2>&1 && [ ! -x /usr/sbin/$b ]; then
        echo "skip: $b not found (install the Debian packages slurm-wlm and munge)"
        echo "RESULT passed=0 failed=0"
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    echo "skip: slurmd must run as root here"
    echo "RESULT passed=0 failed=0"
    exit 0
fi
PATH=$PATH:/usr/sbin
W="$TMPD/slurm"
mkdir -p "$W/state" "$W/spool" "$W/munge" "$W/log"
chmod 700 "$W/munge"
HOST=$(hostname -s)
PIDS=""
cleanup() {   # the daemons run in the foreground as our children: stop them and reap them
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    sleep 1
    for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$TMPD"
}
trap cleanup EXIT

# munge: its own key, socket and pid file
mungekey --create --keyfile="$W/munge/munge.key" --force >/dev/null 2>&1 ||
    dd if=/dev/urandom of="$W/munge/munge.key" bs=1024 count=1 2>/dev/null
chmod 400 "$W/munge/munge.key"
munged --foreground --key-file="$W/munge/munge.key" --socket="$W/munge/munge.socket" \
    --pid-file="$W/munge/munged.pid" --log-file="$W/log/munged.log" --seed-file="$W/munge/seed" --force >/dev/null 2>&1 &
PIDS="$PIDS $!"
sleep 1
[ -S "$W/munge/munge.socket" ] || { bad "munged did not start"; cat "$W/log/munged.log"; finish; exit 1; }

CPUS=$(nproc)
MEM=$(awk '/^MemTotal/ { print int($2 / 1024) - 256 }' /proc/meminfo)
cat >"$W/slurm.conf" <<EOF
ClusterName=tracctest
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$W/munge/munge.socket
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=tracctest Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$W/slurm.conf"
slurmctld -D -f "$SLURM_CONF" >/dev/null 2>&1 &
PIDS="$PIDS $!"
sleep 1
slurmd -D -f "$SLURM_CONF" >/dev/null 2>&1 &
PIDS="$PIDS $!"
sleep 1
i=0
while ! sinfo -h -o %T 2>/dev/null | grep -q idle && [ $i -lt 30 ]; do sleep 1; i=$((i + 1)); done
if sinfo -h -o %T | grep -q idle; then ok; else bad "the node never became idle"; sinfo; tail -20 "$W/log/slurmctld.log" "$W/log/slurmd.log"; finish; exit 1; fi

D="$TMPD/sweep"
"$TRACC" sweep plan tests/sweep/tiny.json -o "$D" --quiet --slurm-partition tracctest --slurm-time 00:10:00 \
    --slurm-mem 500M >/dev/null || bad "plan"
if timeout 600 sbatch --wait "$D/slurm.sh" >"$W/sbatch.out" 2>&1; then ok; else bad "sbatch --wait failed"; cat "$W/sbatch.out"; ls "$D/slurm"; cat "$D"/slurm/*.out | tail -20; fi
expect_out "status after Slurm" 0 "tiny-counter: 8 jobs: 8 done, 0 running, 0 failed, 0 pending" -- "$TRACC" sweep status "$D"
n=$(ls "$D"/slurm/*.out 2>/dev/null | wc -l)
if [ "$n" -eq 8 ]; then ok; else bad "$n Slurm output files, wanted 8"; fi
# a second submission: every line finds its result and does nothing
if timeout 300 sbatch --wait "$D/slurm.sh" >/dev/null 2>&1; then ok; else bad "second sbatch failed"; fi
n=$(cat "$D"/runs/*/stderr.txt | grep -c "^== .* finetune .*/models/start-")
if [ "$n" -eq 8 ]; then ok; else bad "$n fine-tunings for 8 jobs after two submissions"; fi
finish
