#!/usr/bin/env bash
# Stop the daemons that tests/slurm/start.sh started in DIR, by their pid files, and nothing else.
DIR=$(realpath -m "${1:-/tmp/llm-line-slurm}")
for name in slurmd slurmctld slurmdbd mariadb munged; do
  pidfile="$DIR/run/$name.pid"
  [ -s "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
done
