#!/usr/bin/env bash
# Start/stop a throwaway single-node SLURM cluster with accounting (munged,
# mariadbd, slurmdbd, slurmctld, slurmd), everything under one state dir.
#   scripts/slurm_local.sh start|stop|status|env [STATE_DIR]
# Then: eval "$(scripts/slurm_local.sh env)"  (clients need SLURM_CONF).
set -euo pipefail

CMD=${1:-}
S=${2:-${DISH_SLURM_DIR:-/tmp/dish-slurm}}
S=${S%/}
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)   # start order
NODE=$(hostname -s)
CLUSTER=dish
DB_PORT=3307
DB_PASS=dish-slurm-db
# A requeued job waits cred_expire seconds (default 120) before it may start again.
CRED_EXPIRE=${DISH_SLURM_CRED_EXPIRE:-10}
MUNGE_SOCK=$S/run/munge.sock
DB_SOCK=$S/run/mariadb.sock
export SLURM_CONF=$S/etc/slurm.conf

die() { echo "slurm_local: ERROR: $*" >&2; exit 1; }
pid_of() { cat "$S/pids/$1.pid" 2>/dev/null || true; }

print_env() { printf 'export SLURM_CONF=%q\n' "$SLURM_CONF"; }

# True while pid $1 exists and is not a zombie (init here reaps lazily).
running() {
  local state
  [[ -n $1 ]] && state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) \
    && [[ -n $state && $state != Z ]]
}

# Alive = running and still the daemon $2 (guards against pid reuse).
alive() { running "$1" && [[ $(cat "/proc/$1/comm" 2>/dev/null) == "$2" ]]; }

# Wait up to $2 seconds for process $1 to exit.
wait_gone() {
  local n=$(( $2 * 10 ))
  while (( n-- > 0 )); do running "$1" || return 0; sleep 0.1; done
  return 1
}

# Kill one pid: TERM, wait up to 10 s, then KILL and wait again.
kill_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  wait_gone "$pid" 10 && return 0
  echo "slurm_local: pid $pid ignored TERM, sending KILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait_gone "$pid" 5 || echo "slurm_local: pid $pid did not exit" >&2
}

# Launch a daemon in the background (own session), record its pid.
launch() {
  local name=$1; shift
  setsid "$@" </dev/null >"$S/log/$name.out" 2>&1 &
  echo $! >"$S/pids/$name.pid"
}

# wait_for NAME DESC TIMEOUT CMD...: poll CMD until it succeeds; fail early if
# daemon NAME died, or after TIMEOUT seconds, showing the tail of NAME's logs.
wait_for() {
  local name=$1 desc=$2 end=$(( SECONDS + $3 )) why f; shift 3
  until "$@" >/dev/null 2>&1; do
    why=
    if ! alive "$(pid_of "$name")" "$name"; then why="$name exited"
    elif (( SECONDS >= end )); then why="timed out"; fi
    if [[ -n $why ]]; then
      echo "slurm_local: ERROR: $why while waiting for $desc" >&2
      for f in "$S/log/$name.log" "$S/log/$name.out"; do
        [[ -s $f ]] && { echo "--- tail of $f:" >&2; tail -n 20 "$f" >&2; }
      done
      return 1
    fi
    sleep 0.2
  done
}

munge_ok() { munge -n -S "$MUNGE_SOCK" | unmunge -S "$MUNGE_SOCK"; }
sql() { mariadb --no-defaults -uroot -S "$DB_SOCK" "$@"; }
ctld_up() { scontrol ping | grep -q UP; }
queue_empty() { [[ -z $(squeue -h -o %i) ]]; }
node_idle() { [[ $(sinfo -h -n "$NODE" -o %t) == idle ]]; }

write_configs() {
  local c cpus sockets cores threads mem
  c=$(slurmd -C | head -n1)
  cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$c")
  sockets=$(sed -n 's/.*SocketsPerBoard=\([0-9]*\).*/\1/p' <<<"$c")
  cores=$(sed -n 's/.*CoresPerSocket=\([0-9]*\).*/\1/p' <<<"$c")
  threads=$(sed -n 's/.*ThreadsPerCore=\([0-9]*\).*/\1/p' <<<"$c")
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$c")
  [[ -n $cpus && -n $sockets && -n $cores && -n $threads && -n $mem ]] \
    || die "cannot parse 'slurmd -C' output: $c"
  cat >"$SLURM_CONF" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK,cred_expire=$CRED_EXPIRE
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
EnforcePartLimits=ALL
JobRequeue=1
FirstJobId=$(( $(date +%s) % 50000000 + 1000 ))
JobCompType=jobcomp/filetxt
JobCompLoc=$S/jobcomp.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStoragePass=$MUNGE_SOCK
# Short timeouts keep tests fast.
SchedulerParameters=sched_interval=2,bf_interval=2
MinJobAge=30
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
Waittime=0
ReturnToService=2
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  # slurmdbd has no -f: it reads slurmdbd.conf next to $SLURM_CONF.
  (umask 077; cat >"$S/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=$NODE
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
PidFile=$S/run/slurmdbd.pid
LogFile=$S/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
  )
}

# Remove the old state dir (only if it is ours) and create a fresh one.
fresh_dir() {
  [[ -n $S && $S != / ]] || die "refusing to use state dir '$S'"
  if [[ -d $S && -n $(ls -A "$S") && ! -e $S/.dish-slurm ]]; then
    die "$S exists and was not created by this script; refusing to delete it"
  fi
  rm -rf "$S"
  mkdir -p "$S"/{etc,state,spool,log,run,pids,db,munge}
  touch "$S/.dish-slurm"
}

all_up() {
  local d
  for d in "${DAEMONS[@]}"; do alive "$(pid_of "$d")" "$d" || return 1; done
}

any_up() {
  local d
  for d in "${DAEMONS[@]}"; do alive "$(pid_of "$d")" "$d" && return 0; done
  return 1
}

cancel_jobs() {
  local ids
  ids=$(timeout 10 squeue -h -o %i 2>/dev/null) || return 0
  [[ -n $ids ]] && timeout 10 scancel $ids 2>/dev/null || true
}

do_start() {
  if all_up; then
    echo "slurm_local: cluster in $S is already running"
    print_env; return 0
  fi
  any_up && { echo "slurm_local: partial cluster in $S, stopping it first"; do_stop; }
  fresh_dir
  # On any failure from here on, stop whatever was already started.
  trap 'rc=$?; if (( rc )); then echo "slurm_local: start failed, stopping daemons" >&2; do_stop >&2; fi' EXIT
  write_configs

  mungekey -c -k "$S/munge/munge.key" && chmod 600 "$S/munge/munge.key"
  launch munged munged -F --key-file="$S/munge/munge.key" --socket="$MUNGE_SOCK" \
    --pid-file="$S/run/munged.pid" --log-file="$S/log/munged.log" --seed-file="$S/munge/munged.seed"
  wait_for munged munged 15 munge_ok

  mariadb-install-db --no-defaults --user=root --datadir="$S/db" --skip-test-db \
    >"$S/log/mariadb-install.log" 2>&1 || { tail -n 20 "$S/log/mariadb-install.log" >&2; false; }
  launch mariadbd mariadbd --no-defaults --user=root --datadir="$S/db" --socket="$DB_SOCK" \
    --port=$DB_PORT --bind-address=127.0.0.1 --pid-file="$S/run/mariadbd.pid" \
    --log-error="$S/log/mariadbd.log" --innodb-lock-wait-timeout=900
  wait_for mariadbd "mariadbd on 127.0.0.1:$DB_PORT" 30 sql -e 'SELECT 1'
  sql -e "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

  launch slurmdbd slurmdbd -D
  wait_for slurmdbd slurmdbd 30 sacctmgr -n list cluster
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
  # 'add cluster' creates the root account and root user association; check it.
  sacctmgr -n -P list assoc cluster="$CLUSTER" user=root format=account | grep -qx root \
    || sacctmgr -i add user root account=root cluster="$CLUSTER" >/dev/null

  launch slurmctld slurmctld -D -f "$SLURM_CONF"
  wait_for slurmctld "slurmctld (scontrol ping UP)" 30 ctld_up
  launch slurmd slurmd -D -f "$SLURM_CONF" -N "$NODE"
  wait_for slurmd "node $NODE idle" 30 node_idle
  cancel_jobs
  trap - EXIT
  echo "slurm_local: cluster '$CLUSTER' up in $S"
  print_env
}

# All descendants of pid $1, parents before children.
descendants() {
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done
}

# slurmstepd processes orphaned by slurmd still hold the slurmd log open (their
# cmdline is overwritten). They ignore TERM, so KILL them and their job processes.
kill_orphan_stepds() {
  local fd pid p
  for fd in /proc/[0-9]*/fd/*; do
    [[ $(readlink "$fd" 2>/dev/null) == "$S/log/slurmd.log" ]] || continue
    pid=${fd#/proc/}; pid=${pid%%/*}
    [[ $pid != "$$" ]] && alive "$pid" slurmstepd || continue
    echo "slurm_local: killing orphaned slurmstepd $pid and its job processes"
    for p in "$pid" $(descendants "$pid"); do
      kill -KILL "$p" 2>/dev/null || true
      wait_gone "$p" 5 || echo "slurm_local: pid $p did not exit" >&2
    done
  done
}

do_stop() {
  local i d pid
  if alive "$(pid_of slurmctld)" slurmctld; then
    cancel_jobs
    # Let slurmd end the cancelled jobs before it goes down.
    alive "$(pid_of slurmd)" slurmd && wait_for slurmd "jobs to end" 10 queue_empty 2>/dev/null || true
  fi
  for (( i = ${#DAEMONS[@]} - 1; i >= 0; i-- )); do
    d=${DAEMONS[i]}; pid=$(pid_of "$d")
    if alive "$pid" "$d"; then
      echo "slurm_local: stopping $d (pid $pid)"
      kill_pid "$pid"
    fi
    rm -f "$S/pids/$d.pid"
    [[ $d == slurmd ]] && kill_orphan_stepds
  done
  return 0
}

do_status() {
  local d pid rc=0
  for d in "${DAEMONS[@]}"; do
    pid=$(pid_of "$d")
    if alive "$pid" "$d"; then echo "$d: running (pid $pid)"; else echo "$d: stopped"; rc=1; fi
  done
  return $rc
}

case $CMD in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|status|env [STATE_DIR]" >&2; exit 2 ;;
esac
