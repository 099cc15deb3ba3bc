#!/usr/bin/env bash
# One fault-injection scenario against the real binaries: a deadline flood (spike) runs
# while the scenario breaks something, then recovers it; after a full drain the spike's
# audit must find every receipt it was given exactly once in exam.db (lost 0,
# duplicated 0) and no row the students were not told about.
#
#   tests/fault/fault.sh SCENARIO [--build DIR] [--students N] [--out FILE]
#
# Scenarios:
#   server_kill         exam_server (embedded queue) SIGKILLed mid-flood, restarted
#   worker_kill         exam_worker SIGKILLed mid-batch, restarted (embedded queue)
#   worker_kill_nats    the same on NATS JetStream
#   nats_restart        nats-server SIGKILLed mid-flood, restarted on its store
#   nats_node_kill      one node of a three-node cluster (R3 stream) SIGKILLed mid-flood
#   nats_partition_leader_kill  the queue over two R3 streams (partitions=2); the node
#                       leading the second stream SIGKILLed mid-flood
#   sqs_stop            the SQS emulator stopped (SIGSTOP) mid-flood, continued 3 s later
#   db_lock             exam.db locked by another process (BEGIN EXCLUSIVE) for 3 s
#   disk_full           the queue's file system full mid-flood (a 2 MiB tmpfs), then grown
#   worker_kill_postgres  exam_worker writing PostgreSQL SIGKILLed mid-batch, restarted
#   postgres_restart    PostgreSQL stopped with `pg_ctl -m immediate` under the graders
#                       mid-flood, started again 5 s later (the accept path goes on; no
#                       submission may be dead-lettered for it)
#   server_down         spike given two servers of which the second never answers: its
#                       students' connections fail and go to the first, as a load
#                       balancer would send them
#
# While a backend is down the scenario also checks that a submission is answered 503
# with Retry-After at once and that /readyz says not ready. Exit 77: a server or a
# permission the scenario needs is missing here.
set -euo pipefail

scenario=${1:?usage: fault.sh SCENARIO [--build DIR] [--students N] [--out FILE]}
shift
here=$(cd "$(dirname "$0")/../.." && pwd)
build="$here/build" students=4000 out=""
queue_partitions=2  # nats_partition_leader_kill
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --students) students=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "fault.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
bin="$build/examples"
for b in exam_server exam_worker spike; do
  [[ -x "$bin/$b" ]] || { echo "fault.sh: $bin/$b missing: build first" >&2; exit 2; }
done
need() { command -v "$1" >/dev/null || { echo "fault.sh: $1 is not installed (skipped)" >&2; exit 77; }; }
need curl
case $scenario in
  *nats*) need nats-server ;;
  sqs_stop) need node; [[ -d $here/tests/sqs/node_modules/fauxqs ]] || { echo "fault.sh: fauxqs missing (skipped)" >&2; exit 77; } ;;
  db_lock) need sqlite3 ;;
  *postgres*)
    pg_bin=/usr/lib/postgresql/15/bin
    [[ -x $pg_bin/postgres ]] || { echo "fault.sh: PostgreSQL 15 is not installed (skipped)" >&2; exit 77; }
    need psql ;;
esac

work=$(mktemp -d /tmp/ingest-fault.XXXXXX)
export INGEST_JWT_SECRET="fault-$RANDOM-$RANDOM-$RANDOM"
declare -A procs=()  # name -> pid
mounted=""
cleanup() {
  for p in "${procs[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n $mounted ]] && umount "$mounted" 2>/dev/null || true
  [[ -d $work/pg/data ]] && stop_postgres immediate
  rm -rf "$work"
}
trap cleanup EXIT

since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
log() { printf '[%6s] %s\n' "$(since "$t_start")" "$*"; }
t_start=$EPOCHREALTIME
ulimit -c unlimited 2>/dev/null || true  # a crash leaves a core dump for backtraces()

free_port() {  # a port nothing listens on and not handed out before in this run
  local p
  for _ in $(seq 50); do
    p=$((12000 + RANDOM % 20000))  # below the ephemeral range (32768-): a restarted server's
    # port is never taken by a reconnecting client's own ephemeral port (TCP self-connect)
    grep -qx "$p" "$work/ports" 2>/dev/null && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p" >>"$work/ports"
      echo "$p"
      return
    fi
  done
  echo "fault.sh: no free port" >&2
  exit 1
}

# spawn NAME LOG CMD...: runs CMD in the background as NAME, in a directory of its own
# (where a core dump of it lands, if the kernel writes them to the working directory).
declare -A programs=()  # name -> executable, to read a core dump with
spawn() {
  local name=$1 logf=$2
  shift 2
  mkdir -p "$work/run/$name"
  (cd "$work/run/$name" && exec "$@") >>"$logf" 2>&1 &
  procs[$name]=$!
  programs[$name]=$(command -v "$1")
}

# backtraces: the stack of every thread of each process that left a core dump.
backtraces() {
  local dir name core
  for dir in "$work"/run/*; do
    name=${dir##*/}
    for core in "$dir"/core*; do
      [[ -f $core ]] || continue
      if command -v gdb >/dev/null; then
        echo "fault.sh: $name dumped core; its threads:" >&2
        gdb -batch -nx -ex 'thread apply all bt 30' "${programs[$name]}" "$core" 2>&1 | grep -v '^\[New LWP' >&2 || true
      else
        echo "fault.sh: $name dumped core ($core); gdb is not installed to read it" >&2
      fi
    done
  done
}

# wait_for LOG TEXT [SECONDS]
wait_for() {
  local logf=$1 text=$2 limit=${3:-30}
  for _ in $(seq $((limit * 10))); do
    grep -q "$text" "$logf" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "fault.sh: '$text' did not appear in $logf:" >&2
  tail -20 "$logf" >&2
  exit 1
}

kill_proc() {  # kill_proc NAME SIGNAL
  kill "-$2" "${procs[$1]}" 2>/dev/null || true
  if [[ $2 == KILL || $2 == TERM ]]; then wait "${procs[$1]}" 2>/dev/null || true; fi
}

port=$(free_port)
url="http://127.0.0.1:$port"
data="$work/data"
mkdir -p "$data"
queue_url="" workers_args=() worker_needed=0 server_extra=() db="$data/exam.db" spike_urls=""

start_server() {
  spawn server "$work/server.log" "$bin/exam_server" --listen "127.0.0.1:$port" --data "$data" --student-rate 0 \
    "${workers_args[@]}" "${server_extra[@]}" ${queue_url:+--queue "$queue_url"}
  for _ in $(seq 300); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$url/readyz") == 200 ]] && return 0
    sleep 0.1
  done
  echo "fault.sh: exam_server did not become ready" >&2
  tail -20 "$work/server.log" >&2
  exit 1
}
start_worker() {
  spawn worker "$work/worker.log" "$bin/exam_worker" --data "$data" --queue "$queue_url" --rate 800 --batch 100 \
    --sink "$db"
}

rows_written() {
  if [[ $db == postgresql://* ]]; then
    psql -At "$db" -c "SELECT count(*) FROM submissions" 2>/dev/null || echo 0
  else
    sqlite3 -readonly "$db" "SELECT count(*) FROM submissions" 2>/dev/null || echo 0
  fi
}

# shellcheck source=tests/fault/brokers.sh
source "$here/tests/fault/brokers.sh"

fauxqs_port=""
start_fauxqs() {
  spawn fauxqs "$work/fauxqs.log" node "$here/tests/sqs/fauxqs.mjs" --port "$fauxqs_port"
  wait_for "$work/fauxqs.log" listening
}

# probe_down: while the backend is down a submission gets 503 + Retry-After at once,
# and /readyz says not ready.
probe_down() {
  local token status headers t
  token=$("$bin/exam_server" token --sub probe-student --role student --ttl 1h)
  headers="$work/probe.headers"
  t=$(curl -s -o /dev/null -D "$headers" -w '%{http_code} %{time_total}' -X POST "$url/v1/exams/demo/submissions" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -H "Idempotency-Key: probe-$RANDOM" \
    -d '{"answers":{"q1":"A"}}' --max-time 10 || true)
  status=${t%% *}
  log "probe while down: submit -> $status in ${t##* } s, readyz -> $(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")"
  if [[ $status != 503 ]] || ! grep -qi '^retry-after:' "$headers"; then
    echo "fault.sh: while the backend was down a submission got $status (expected 503 with Retry-After)" >&2
    exit 1
  fi
  if awk -v t="${t##* }" 'BEGIN { exit !(t > 6.0) }'; then
    echo "fault.sh: the 503 took ${t##* } s (a hang, not an answer)" >&2
    exit 1
  fi
  # Readiness may lag the first failure by a moment.
  for _ in $(seq 30); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$url/readyz") == 503 ]] && return 0
    sleep 0.1
  done
  echo "fault.sh: /readyz still says ready while the backend is down" >&2
  exit 1
}

# key_in_partition PREFIX P N: an Idempotency-Key whose queue key, demo/probe-student/KEY,
# is in partition P of N (ingest::partition_of: 64-bit FNV-1a modulo N).
key_in_partition() {
  python3 -c '
import random, sys
prefix, p, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def fnv(text):
    h = 14695981039346656037
    for b in text.encode():
        h = ((h ^ b) * 1099511628211) % 2**64
    return h
while True:
    key = prefix + str(random.getrandbits(40))
    if fnv("demo/probe-student/" + key) % n == p:
        print(key)
        break' "$@"
}

# recovered: seconds from the repair until a fresh submission gets its receipt (over
# partitions, `probe_key` is one of the partition that was broken: the others never were).
probe_key=""
recovered() {
  local t0 token key code
  t0=$EPOCHREALTIME
  token=$("$bin/exam_server" token --sub probe-student --role student --ttl 1h)
  key=${probe_key:-recover-$RANDOM$RANDOM}
  for _ in $(seq 600); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/v1/exams/demo/submissions" --max-time 5 \
      -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -H "Idempotency-Key: $key" \
      -d '{"answers":{"q1":"A"}}' || true)
    if [[ $code == 202 || $code == 200 ]]; then
      recovery=$(since "$t0")
      log "recovered: a new submission got its receipt ${recovery} s after the repair"
      return 0
    fi
    sleep 0.05
  done
  echo "fault.sh: no receipt within 30 s of the repair" >&2
  exit 1
}

# resumed: seconds from the repair until exam.db grows again (the drain side is back).
resumed() {
  local t0=$EPOCHREALTIME before now
  before=$(rows_written)
  for _ in $(seq 600); do
    now=$(rows_written)
    if ((now > before)); then
      recovery=$(since "$t0")
      log "resumed: the submissions grow again ${recovery} s after the repair ($before -> $now rows)"
      return 0
    fi
    sleep 0.05
  done
  echo "fault.sh: the submissions did not grow within 30 s of the repair" >&2
  exit 1
}

# ---- set-up per scenario --------------------------------------------------------------
case $scenario in
  server_down)
    spike_urls=",http://127.0.0.1:$(free_port)" ;;  # nothing listens there
  server_kill | db_lock)
    # Leases of a killed server's graders come back after 3 s instead of 30.
    queue_url="sqlite://$data/queue.db?visibility_timeout=3s&commit_linger=500us" ;;
  disk_full)
    ;;
  worker_kill)
    queue_url="sqlite://$data/queue.db?visibility_timeout=3s"
    workers_args=(--workers 0)
    worker_needed=1 ;;
  worker_kill_nats | nats_restart)
    nats_ports=("$(free_port)")
    start_nats 0
    queue_url="nats://127.0.0.1:${nats_ports[0]}?ack_wait=3s"
    workers_args=(--workers 0)
    worker_needed=1 ;;
  nats_node_kill | nats_partition_leader_kill)
    nats_ports=("$(free_port)" "$(free_port)" "$(free_port)")
    nats_cluster_ports=("$(free_port)" "$(free_port)" "$(free_port)")
    nats_monitor_ports=("$(free_port)" "$(free_port)" "$(free_port)")
    for i in 0 1 2; do start_nats "$i" cluster; done
    cluster_ready
    queue_url="nats://127.0.0.1:${nats_ports[0]},127.0.0.1:${nats_ports[1]},127.0.0.1:${nats_ports[2]}?replicas=3&ack_wait=3s"
    [[ $scenario == nats_partition_leader_kill ]] && queue_url+="&partitions=$queue_partitions"
    workers_args=(--workers 0)
    worker_needed=1 ;;
  worker_kill_postgres | postgres_restart)
    pg_port=$(free_port)
    start_postgres
    db="postgresql://ingest@127.0.0.1:$pg_port/postgres"
    server_extra=(--db "$db")
    if [[ $scenario == worker_kill_postgres ]]; then
      queue_url="sqlite://$data/queue.db?visibility_timeout=3s"
      workers_args=(--workers 0)
      worker_needed=1
    fi ;;
  sqs_stop)
    fauxqs_port=$(free_port)
    start_fauxqs
    queue_url="sqs+http://127.0.0.1:$fauxqs_port/000000000000/fault-submissions"
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
    workers_args=(--workers 0)
    worker_needed=1 ;;
  *) echo "fault.sh: unknown scenario $scenario" >&2; exit 2 ;;
esac
if [[ $scenario == disk_full ]]; then
  mounted="$work/small"
  mkdir -p "$mounted"
  if ! mount -t tmpfs -o size=2m tmpfs "$mounted" 2>/dev/null; then
    mounted=""
    echo "fault.sh: cannot mount a small tmpfs here (needs CAP_SYS_ADMIN; skipped)" >&2
    exit 77
  fi
  queue_url="sqlite://$mounted/queue.db?visibility_timeout=3s"
fi
if [[ $scenario == server_kill || $scenario == db_lock || $scenario == disk_full ]]; then
  server_extra+=(--rate 800)  # slower than the flood: a backlog is queued when the fault hits
fi
# Graders that fetch again as soon as a retry is due: an outage that cost attempts would
# use up all five of some submissions' attempts, and dead-letter them.
[[ $scenario == postgres_restart ]] && server_extra+=(--rate 0 --batch 50)
start_server
((worker_needed)) && start_worker
log "$scenario: exam_server ready at $url${queue_url:+ (queue $queue_url)}"
if [[ $scenario == nats_partition_leader_kill ]]; then
  leader=$(stream_leader INGEST-1)
  probe_key=$(key_in_partition recover- 1 "$queue_partitions")
  log "stream leaders: INGEST-0 on $(stream_leader INGEST-0 || echo unknown), INGEST-1 on $leader"
fi

# ---- the flood --------------------------------------------------------------------------
result="${out:-$work/result.json}"
spawn spike "$work/spike.log" "$bin/spike" --url "$url$spike_urls" --students "$students" --window 3 --timeout 5 --retries 8 \
  --db "$db" --drain-timeout 120 --json "$result" --label "fault-$scenario"
wait_for "$work/spike.log" "connections open" 60
sleep 1.2  # about a third into the 3-second wall
log "fault: $scenario"

recovery=""
case $scenario in
  server_down)
    log "the second server was never up" ;;
  server_kill)
    kill_proc server KILL
    log "exam_server SIGKILLed; restarting in 1 s"
    sleep 1
    t_repair=$EPOCHREALTIME
    start_server
    recovery=$(since "$t_repair")
    log "exam_server ready again ${recovery} s after the restart began" ;;
  worker_kill | worker_kill_nats | worker_kill_postgres)
    sleep 1
    kill_proc worker KILL
    log "exam_worker SIGKILLed mid-batch; restarting in 1 s"
    sleep 1
    start_worker
    resumed ;;
  nats_restart)
    kill_proc nats0 KILL
    log "nats-server SIGKILLed"
    sleep 0.5
    probe_down
    sleep 1
    start_nats 0
    recovered ;;
  postgres_restart)
    sleep 0.5
    stop_postgres immediate
    # Longer than the graders' 5 attempts last (backoff ceilings 0.2 + 0.4 + 0.8 + 1.6 s).
    log "PostgreSQL stopped (pg_ctl -m immediate) under the graders; starting it in 5 s"
    sleep 5
    start_postgres
    resumed ;;
  nats_node_kill)
    kill_proc nats0 KILL
    log "nats node 0 (the first in the server list) SIGKILLed; the cluster goes on with two"
    recovered ;;
  nats_partition_leader_kill)
    kill_proc "nats${leader#n}" KILL
    log "nats node $leader, the leader of partition 1 (stream INGEST-1), SIGKILLed; the cluster goes on with two"
    recovered ;;
  sqs_stop)
    kill_proc fauxqs STOP
    log "emulator stopped (SIGSTOP) for 3 s"
    sleep 3
    kill_proc fauxqs CONT
    recovered ;;
  db_lock)
    if ! sqlite3 "$data/exam.db" "PRAGMA busy_timeout=5000; BEGIN EXCLUSIVE; SELECT count(*) FROM submissions;" \
      ".shell sleep 3" "COMMIT;" >"$work/lock.log" 2>&1; then
      echo "fault.sh: could not lock exam.db:" >&2
      cat "$work/lock.log" >&2
      exit 1
    fi
    log "exam.db was locked (BEGIN EXCLUSIVE) for 3 s by another process, at $(head -1 "$work/lock.log") rows"
    resumed ;;
  disk_full)
    # Fill what is left of the small file system, so the queue's next pages do not fit.
    dd if=/dev/zero of="$mounted/filler" bs=64k 2>/dev/null || true
    log "queue file system full ($(df -h --output=avail "$mounted" | tail -1 | tr -d ' ') left)"
    sleep 0.3
    probe_down
    sleep 1.5
    rm -f "$mounted/filler"
    mount -o remount,size=64m "$mounted"
    log "space is back"
    recovered ;;
esac

# ---- the verdict ------------------------------------------------------------------------
rc=0
wait "${procs[spike]}" || rc=$?
unset 'procs[spike]'
cat "$work/spike.log"
# With PostgreSQL under the graders, an outage must cost no delivery attempts: a dead
# letter there means the graders gave up on a submission during the fault.
no_dead_letters=0
[[ $scenario == *postgres* ]] && no_dead_letters=1
figures=$(python3 - "$result" "$no_dead_letters" "$url" "$spike_urls" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
a = r["audit"]
refused = r["students"] - r["receipts"]
print(f'accepted={r["receipts"]} refused={refused} lost={a["lost"]} duplicated={a["duplicated"]} '
      f'rows_without_receipt={a["rows_without_receipt"]} pending={a["pending"]} dead_lettered={a["dead_lettered"]} '
      f'gave_up={r["gave_up"]} errors={json.dumps(r["errors"], separators=(",", ":"))}')
ok = a["audited"] and a["lost"] == 0 and a["duplicated"] == 0 and a["pending"] == 0 and a["rows_without_receipt"] <= r["gave_up"]
if sys.argv[2] == "1" and a["dead_lettered"] != 0:
    ok = False
if sys.argv[4]:  # a server that was never up: its students failed over to the live one
    live = sys.argv[3].removeprefix("http://").rstrip("/")
    by = r.get("answered_2xx_by", {})
    print(f"2xx by server: {json.dumps(by)}")
    ok = ok and refused == 0 and r["errors"].get("connect_error", 0) > 0 and set(by) == {live} and by[live] == r["ok"]
sys.exit(0 if ok else 1)
EOF
) || rc=1
echo "$scenario: $figures recovery_s=${recovery:-n/a}"

# Graceful stop: the drain must still end with exit code 0. A process that is already
# gone died during the flood (a crash, not a scenario's kill: those are restarted).
for name in server worker; do
  [[ -n ${procs[$name]:-} ]] || continue
  code=0
  if kill -0 "${procs[$name]}" 2>/dev/null; then
    kill -TERM "${procs[$name]}"
    wait "${procs[$name]}" || code=$?
    what="exited with $code after SIGTERM"
  else
    wait "${procs[$name]}" || code=$?
    what="died during the flood (exit status $code)"
    ((code > 128)) && what="died during the flood (signal $((code - 128)))"
  fi
  unset "procs[$name]"
  if [[ $code -ne 0 ]]; then
    echo "fault.sh: $name $what" >&2
    tail -20 "$work/$name.log" >&2
    rc=1
  fi
done
if [[ $rc -ne 0 ]]; then
  echo "fault.sh: $scenario FAILED" >&2
  tail -30 "$work/server.log" >&2
  [[ -f $work/worker.log ]] && tail -30 "$work/worker.log" >&2
  backtraces
fi
exit "$rc"
