#!/usr/bin/env bash
# Start a real one-node SLURM cluster on localhost for the integration tests:
# munged, MariaDB + slurmdbd (accounting, so `sacct` answers as on a real cluster), slurmctld, slurmd.
# CPUs only, no cgroups, no GPUs; KillWait=3 so that scancel's SIGKILL follows SIGTERM (which submitit
# ignores, to allow requeueing) after 3 s rather than 30; AuthInfo=cred_expire=5, since a requeued job may start
# again only once its credential expired (SLURM's default: 120 s). Installs Debian's packages when they are missing (needs root).
#
#   tests/slurm/start.sh [DIR]      # DIR holds configs, state, logs and pid files (default /tmp/llm-line-slurm)
#   export SLURM_CONF=DIR/slurm.conf
#   tests/slurm/stop.sh [DIR]       # stops exactly the daemons this script started, by their pid files
set -euo pipefail
DIR=$(realpath -m "${1:-/tmp/llm-line-slurm}")
HERE=$(cd "$(dirname "$0")" && pwd)

packages=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server mariadb-client)
if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

"$HERE/stop.sh" "$DIR" 2>/dev/null || true
mkdir -p "$DIR"/{state,spool,log,run,db}

# munge: the daemons authenticate each other with it; it must run as the munge user.
mkdir -p /run/munge /var/lib/munge /var/log/munge /etc/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
chown -R munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge
chmod 0400 /etc/munge/munge.key
runuser -u munge -- munged --pid-file=/run/munge/llm-line-munged.pid --force
cp /run/munge/llm-line-munged.pid "$DIR/run/munged.pid"

# MariaDB for slurmdbd, on its own data dir and port so it never touches a system database.
DBPORT=3307
mariadb-install-db --user=root --datadir="$DIR/db" --auth-root-authentication-method=normal >"$DIR/log/mariadb-install.log" 2>&1
mariadbd --user=root --datadir="$DIR/db" --socket="$DIR/run/mysqld.sock" --port=$DBPORT --bind-address=127.0.0.1 \
  --pid-file="$DIR/run/mariadb.pid" --log-error="$DIR/log/mariadb.log" --skip-name-resolve >/dev/null 2>&1 &
for _ in $(seq 60); do mariadb -S "$DIR/run/mysqld.sock" -uroot -e 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done
mariadb -S "$DIR/run/mysqld.sock" -uroot -e "
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"

HOST=$(hostname -s)
cat > "$DIR/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DBPORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
CONF
chmod 600 "$DIR/slurmdbd.conf"

cat > "$DIR/slurm.conf" <<CONF
ClusterName=llmline
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=5
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=sched_interval=2
EnforcePartLimits=ALL
MailProg=/bin/true
ReturnToService=2
MinJobAge=300
KillWait=3
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
$(slurmd -C | head -n 1) NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$DIR/slurm.conf"  # slurmdbd reads slurmdbd.conf beside it

slurmdbd
for _ in $(seq 60); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
sacctmgr -i add cluster llmline >/dev/null 2>&1 || true
slurmctld
slurmd
for _ in $(seq 60); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 0.5; done
sinfo -h -o %T | grep -q idle || { echo "SLURM node did not come up; logs in $DIR/log" >&2; exit 1; }
echo "SLURM is up: export SLURM_CONF=$DIR/slurm.conf"
