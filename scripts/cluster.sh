#!/usr/bin/env bash
# The multi-machine topology on one machine, on loopback ports, each process with its own
# data directory as if on its own machine:
#   three nats-server nodes (one JetStream cluster; the exam stream is R3),
#   one PostgreSQL 15,
#   three exam_servers (accept; no graders in-process),
#   two exam_workers (grade into PostgreSQL, two connections each).
#
#   scripts/cluster.sh up     [--dir DIR] [--build DIR] [--base PORT] [--exams FILE]
#   scripts/cluster.sh status [--dir DIR]
#   scripts/cluster.sh down   [--dir DIR] [--wipe]
#   scripts/cluster.sh stop   NAME [--kill] [--dir DIR]   one process: postgres, nats1..3,
#   scripts/cluster.sh start  NAME [--dir DIR]            server1..3, worker1..2
#
# DIR defaults to ./cluster. Every process reads the same exams: FILE, else DIR/exams.json,
# written at the first `up` with the demo exam (id `demo`, q1..q10, the built-in demo's
# key), open from then for 7 days (the built-in demo exam would open when each process
# starts, so the processes would disagree on its times). Ports: BASE+1..3 the exam servers, BASE+11..13 NATS clients,
# BASE+21..23 NATS routes, BASE+31..33 NATS monitoring, BASE+40 PostgreSQL (BASE: 18000).
# `up` prints the servers' URLs, a student and a teacher token, and a first request.
# `down` drains the servers and workers (SIGTERM), then stops NATS and PostgreSQL; the
# data stays for the next `up` unless --wipe.
set -euo pipefail

action=${1:?usage: cluster.sh up|status|down|stop NAME|start NAME [--dir DIR] [--build DIR] [--base PORT] [--wipe]}
shift
name=""
if [[ $action == start || $action == stop ]]; then
  name=${1:?cluster.sh $action NAME (postgres, nats1..3, server1..3, worker1..2)}
  shift
fi
hard=0
here=$(cd "$(dirname "$0")/.." && pwd)
dir="$PWD/cluster" build="$here/build" base=18000 wipe=0 exams=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --wipe) wipe=1; shift ;;
    --kill) hard=1; shift ;;
    --exams) exams=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    *) echo "cluster.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# The processes start in their own directories: the build is named absolutely.
[[ -d $build ]] && build=$(cd "$build" && pwd)
pg_bin=/usr/lib/postgresql/15/bin

say() { echo "cluster.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# Ports are fixed by BASE at `up` and kept in DIR/ports for `status` and `down`.
ports_file="$dir/ports"
load_ports() {
  [[ -f $ports_file ]] && base=$(<"$ports_file")
  server_ports=($((base + 1)) $((base + 2)) $((base + 3)))
  nats_ports=($((base + 11)) $((base + 12)) $((base + 13)))
  route_ports=($((base + 21)) $((base + 22)) $((base + 23)))
  monitor_ports=($((base + 31)) $((base + 32)) $((base + 33)))
  pg_port=$((base + 40))
  queue_url="nats://127.0.0.1:${nats_ports[0]},127.0.0.1:${nats_ports[1]},127.0.0.1:${nats_ports[2]}?replicas=3"
  db_url="postgresql://exam@127.0.0.1:$pg_port/exams"
}

alive() { [[ -f $dir/$1/pid ]] && kill -0 "$(<"$dir/$1/pid")" 2>/dev/null; }

# spawn NAME COMMAND...: detached, in DIR/NAME, output in DIR/NAME/log, pid in DIR/NAME/pid,
# the command line in DIR/NAME/cmd (for `start NAME`).
spawn() {
  local name=$1
  shift
  mkdir -p "$dir/$name"
  printf '%s\0' "$@" >"$dir/$name/cmd"
  (cd "$dir/$name" && exec setsid "$@" >>"$dir/$name/log" 2>&1 </dev/null) &
  echo $! >"$dir/$name/pid"
}

wait_until() {  # wait_until SECONDS WHAT COMMAND...
  local limit=$1 what=$2
  shift 2
  for _ in $(seq $((limit * 10))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$what did not come up within $limit s (logs in $dir)"
}

http_ok() { [[ $(curl -s -o /dev/null -w '%{http_code}' "$1") == 200 ]]; }
# more_lines FILE TEXT N: FILE has more than N lines with TEXT.
more_lines() { (($(grep -c "$2" "$1" 2>/dev/null || true) > $3)); }

as_pg_user() {
  if [[ $(id -u) -eq 0 ]]; then setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; else "$@"; fi
}

start_postgres() {
  if [[ ! -d $dir/postgres/data ]]; then
    mkdir -p "$dir/postgres"
    # As root, PostgreSQL runs as the `postgres` user, who must be able to reach its directory.
    if [[ $(id -u) -eq 0 ]]; then
      chown postgres:postgres "$dir/postgres"
      chmod a+x "$dir"
    fi
    as_pg_user "$pg_bin/initdb" -D "$dir/postgres/data" -U exam --auth=trust -E UTF8 --locale=C \
      >"$dir/postgres/initdb.log" 2>&1 || die "initdb failed: $dir/postgres/initdb.log"
  fi
  as_pg_user "$pg_bin/pg_ctl" -D "$dir/postgres/data" -w -l "$dir/postgres/log" \
    -o "-p $pg_port -k $dir/postgres -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null ||
    die "PostgreSQL did not start: $dir/postgres/log"
  psql -q "postgresql://exam@127.0.0.1:$pg_port/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = 'exams'" |
    grep -q 1 || createdb -h 127.0.0.1 -p "$pg_port" -U exam exams
}

start_nats() {
  local i routes=()
  for i in 0 1 2; do
    routes=()
    for j in 0 1 2; do [[ $j != "$i" ]] && routes+=("nats://127.0.0.1:${route_ports[$j]}"); done
    spawn "nats$((i + 1))" nats-server -js -a 127.0.0.1 -p "${nats_ports[$i]}" -sd "$dir/nats$((i + 1))/store" \
      -n "n$((i + 1))" --cluster_name exam --cluster "nats://127.0.0.1:${route_ports[$i]}" \
      --routes "$(IFS=,; echo "${routes[*]}")" -m "${monitor_ports[$i]}"
  done
  # Every node in contact with a JetStream meta leader that knows all three: before that,
  # creating the R3 stream fails ("no suitable peers for placement").
  for i in 0 1 2; do wait_until 30 "nats node $((i + 1))" http_ok "http://127.0.0.1:${monitor_ports[$i]}/healthz"; done
}

up() {
  for p in nats-server curl psql createdb setsid; do command -v $p >/dev/null || die "$p is not installed"; done
  [[ -x $pg_bin/postgres ]] || die "PostgreSQL 15 is not installed ($pg_bin)"
  for b in exam_server exam_worker; do [[ -x $build/examples/$b ]] || die "$build/examples/$b missing: build first"; done
  for name in nats1 nats2 nats3 server1 server2 server3 worker1 worker2; do
    alive "$name" && die "already running ($name); 'cluster.sh down' first"
  done
  [[ -f $ports_file ]] || echo "$base" >"$ports_file"
  load_ports
  for p in "${server_ports[@]}" "${nats_ports[@]}" "${route_ports[@]}" "${monitor_ports[@]}" "$pg_port"; do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && die "port $p is taken (choose another --base)"
  done
  if [[ ! -f $dir/secret ]]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/secret")
  fi
  export INGEST_JWT_SECRET
  INGEST_JWT_SECRET=$(<"$dir/secret")

  if [[ -z $exams ]]; then
    exams="$dir/exams.json"
    [[ -f $exams ]] || cat >"$exams" <<EOF
{"exams": [{"id": "demo", "title": "Demo exam (10 questions)",
  "answer_key": {"q1": "B", "q2": "D", "q3": "A", "q4": "C", "q5": "B", "q6": "A", "q7": "D", "q8": "C", "q9": "C", "q10": "A"},
  "opens_at": "$(date -u -d '-1 min' +%Y-%m-%dT%H:%M:%S.000Z)", "deadline": "$(date -u -d '+7 days' +%Y-%m-%dT%H:%M:%S.000Z)",
  "grace_seconds": 60, "students": "any"}]}
EOF
  fi
  start_postgres
  start_nats
  local i
  for i in 1 2 3; do
    spawn "server$i" "$build/examples/exam_server" --listen "127.0.0.1:${server_ports[$((i - 1))]}" \
      --data "$dir/server$i/data" --queue "$queue_url" --db "$db_url" --workers 0 --exams "$exams"
    wait_until 30 "exam_server $i" http_ok "http://127.0.0.1:${server_ports[$((i - 1))]}/readyz"
  done
  for i in 1 2; do
    local seen=0
    [[ -f $dir/worker$i/log ]] && seen=$(grep -c "exam_worker: draining" "$dir/worker$i/log" || true)
    spawn "worker$i" "$build/examples/exam_worker" --data "$dir/worker$i/data" --queue "$queue_url" \
      --sink "$db_url" --workers 2 --exams "$exams"
    # Its log is kept across runs: wait for a line this start wrote.
    wait_until 30 "exam_worker $i" more_lines "$dir/worker$i/log" "exam_worker: draining" "$seen"
  done
  local student teacher
  student=$("$build/examples/exam_server" token --sub demo-student --role student --ttl 8h)
  teacher=$("$build/examples/exam_server" token --sub demo-teacher --role teacher --ttl 8h)
  cat <<EOF
cluster up in $dir
  exam servers:  http://127.0.0.1:${server_ports[0]}  http://127.0.0.1:${server_ports[1]}  http://127.0.0.1:${server_ports[2]}
  queue:         $queue_url
  database:      $db_url
  JWT secret:    $dir/secret
  student token: $student
  teacher token: $teacher
try:
  curl -s -X POST http://127.0.0.1:${server_ports[0]}/v1/exams/demo/submissions \\
    -H "Authorization: Bearer $student" -H 'Content-Type: application/json' \\
    -H "Idempotency-Key: \$(cat /proc/sys/kernel/random/uuid)" -d '{"answers":{"q1":"B"}}'
  # then GET /v1/submissions/RECEIPT on any of the three servers
stop:  scripts/cluster.sh down --dir $dir
EOF
}

status() {
  load_ports
  local name
  for name in postgres nats1 nats2 nats3 server1 server2 server3 worker1 worker2; do
    if [[ $name == postgres ]]; then
      as_pg_user "$pg_bin/pg_ctl" -D "$dir/postgres/data" status >/dev/null 2>&1 && echo "postgres  up   :$pg_port" ||
        echo "postgres  down"
    elif alive "$name"; then
      echo "$name  up   pid $(<"$dir/$name/pid")"
    else
      echo "$name  down"
    fi
  done
}

# stop_proc NAME LIMIT: SIGTERM, then SIGKILL after LIMIT seconds.
stop_proc() {
  local name=$1 limit=$2 pid
  alive "$name" || { rm -f "$dir/$name/pid"; return 0; }
  pid=$(<"$dir/$name/pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((limit * 10))); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$dir/$name/pid"; return 0; }
    sleep 0.1
  done
  say "$name did not stop within $limit s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/$name/pid"
}

# One process, as a machine of the deployment would fail and come back.
start_one() {
  load_ports
  if [[ $name == postgres ]]; then start_postgres; return; fi
  [[ -f $dir/$name/cmd ]] || die "no such process: $name"
  alive "$name" && die "$name is running"
  export INGEST_JWT_SECRET
  INGEST_JWT_SECRET=$(<"$dir/secret")
  local args=()
  mapfile -d '' -t args <"$dir/$name/cmd"
  spawn "$name" "${args[@]}"
  case $name in
    nats*) wait_until 30 "$name" http_ok "http://127.0.0.1:${monitor_ports[${name#nats} - 1]}/healthz" ;;
    server*) wait_until 30 "$name" http_ok "http://127.0.0.1:${server_ports[${name#server} - 1]}/readyz" ;;
  esac
}

stop_one() {
  load_ports
  if [[ $name == postgres ]]; then
    as_pg_user "$pg_bin/pg_ctl" -D "$dir/postgres/data" -m "$( ((hard)) && echo immediate || echo fast)" -w stop \
      >/dev/null
    return
  fi
  [[ -f $dir/$name/cmd ]] || die "no such process: $name"
  if ((hard)); then
    alive "$name" && kill -KILL "$(<"$dir/$name/pid")"
    rm -f "$dir/$name/pid"
  else
    stop_proc "$name" 30
  fi
}

down() {
  load_ports
  local name
  for name in server1 server2 server3; do stop_proc "$name" 30 & done
  wait
  for name in worker1 worker2; do stop_proc "$name" 30 & done
  wait
  for name in nats1 nats2 nats3; do stop_proc "$name" 10 & done
  wait
  if [[ -d $dir/postgres/data ]]; then
    as_pg_user "$pg_bin/pg_ctl" -D "$dir/postgres/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  if ((wipe)); then rm -rf "$dir"; echo "cluster down, $dir removed"; else echo "cluster down (data kept in $dir)"; fi
}

case $action in
  up) up ;;
  status) status ;;
  down) down ;;
  start) start_one ;;
  stop) stop_one ;;
  *) die "unknown action $action (up, status, down, start, stop)" ;;
esac
