#!/usr/bin/env bash
# The deadline flood, one command: the same flood against direct_server (insert in the
# request) and exam_server (embedded queue) in the same run on this machine, then the
# open-loop rate against exam_server (on --backend, with the broker's CPU when it has
# one) and against bare_http (the HTTP layer alone).
# Every run is audited (every receipt in exam.db exactly once); medians and ratios are
# printed as Markdown tables and kept with the raw JSON and SVG charts in --out.
#
#   benchmarks/flood.sh [--students 10000] [--window 1] [--runs 3] [--consumer-rate 5000]
#                       [--open-rate 25000] [--open-seconds 5] [--burst RATE:SECONDS]
#                       [--build build] [--out DIR]
#     --burst: the open loop against the queue (this mode only) starts with RATE/s for
#     SECONDS, then goes on at --open-rate; spike prints p50/p99 by the second (does the
#     tail recover?).
#   benchmarks/flood.sh --quick [--backend sqlite|nats|sqs|memory]   # 500 students, one run, for CI
#     (with --burst, also the burst's open loop, checked for every receipt of its first second)
#   benchmarks/flood.sh --abuse [--legit-rate 1000] [--abuse-rate 20000] [--open-seconds 10]
#   benchmarks/flood.sh --sink postgres [--small-db] [...]
#   benchmarks/flood.sh --polls 5000 [--backend nats --sink postgres] [--open-rate N] [--runs 3]
#                       [--read-nice N]
#   benchmarks/flood.sh --streams 10000 [--open-rate N] [--open-seconds S] [--runs 3]
#   benchmarks/flood.sh --attachments 2 [--open-rate N] [--open-seconds S] [--runs 3]
#
# --sink postgres starts one PostgreSQL 15 for the whole run (initdb in the work
# directory, as the unprivileged `postgres` user when run as root) and gives every
# wall a fresh database on it: direct_server inserts into it (pool of 100 connections),
# exam_server's graders and exam_worker write it, spike audits it. --small-db makes it
# as small as the original experiment's: pinned to one core (taskset), max_connections
# 100, shared_buffers 16MB.
#
# --polls R measures what students polling their status cost the accept path: the open
# loop against exam_server without and with R status reads/s (GET of receipts already
# given, each with its student's token), alternately, on fresh stacks; the report sets
# the accept latency of both side by side, and lists what the reads answered.
# --read-nice N runs exam_server's read threads N lower (its default: 10; 0: as the
# HTTP threads).
#
# --streams N measures what students following their status cost the accept path: the
# open loop against exam_server (embedded queue) alone, with N students following
# their receipts over event streams (each submitted before the flood, one connection
# each, read again every 2 s: the server's default), and with N students polling every
# 2 s instead (N/2 GETs/s), in turn, each on a fresh stack. The graders are off
# (--workers 0), so that every followed receipt stays "received" through the flood as
# in a real deadline backlog, and nothing is audited. It also reports the server's
# resident memory before and with the streams open.
#
# --abuse measures the rate limits instead: legitimate students at a constant rate,
# alone and then while an abusive client (one account, its own address 127.0.0.2, a new
# key per request, no backoff) floods the server; the server runs with a per-student
# and a per-address limit. It reports the students' latency in both runs.
#
# --backend nats starts nats-server, --backend sqs the fauxqs emulator (tests/sqs, on
# 127.0.0.1), each with exam_worker as a separate process.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
students=10000 window=1 runs=3 consumer_rate=5000 open_rate=25000 open_seconds=5 burst_args=()
build="$here/build" out="" quick=0 backend=sqlite abuse=0 legit_rate=1000 abuse_rate=20000 sink=sqlite small_db=0
poll_rate=0 read_nice=() streams=0 attachments=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --students) students=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --consumer-rate) consumer_rate=$2; shift 2 ;;
    --open-rate) open_rate=$2; shift 2 ;;
    --open-seconds) open_seconds=$2; shift 2 ;;
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --quick) quick=1; students=500; runs=1; shift ;;
    --abuse) abuse=1; open_seconds=10; shift ;;
    --legit-rate) legit_rate=$2; shift 2 ;;
    --abuse-rate) abuse_rate=$2; shift 2 ;;
    --sink) sink=$2; shift 2 ;;
    --small-db) small_db=1; shift ;;
    --polls) poll_rate=$2; shift 2 ;;
    --streams) streams=$2; shift 2 ;;
    --attachments) attachments=$2; shift 2 ;;
    --burst) burst_args=(--burst-rate "${2%%:*}" --burst-seconds "${2#*:}"); shift 2 ;;
    --read-nice) read_nice=(--read-nice "$2"); shift 2 ;;
    *) echo "flood.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
bin="$build/examples"
if [[ $backend == nats ]] && ! command -v nats-server >/dev/null; then
  echo "flood.sh: nats-server is not installed (skipped)" >&2
  exit 77
fi
fauxqs_dir="$here/tests/sqs"
if [[ $backend == sqs ]] && { ! command -v node >/dev/null || [[ ! -d $fauxqs_dir/node_modules/fauxqs ]]; }; then
  echo "flood.sh: node or the fauxqs emulator is not installed (scripts/setup.sh installs both; skipped)" >&2
  exit 77
fi
pg_bin=/usr/lib/postgresql/15/bin
if [[ $sink == postgres ]] && [[ ! -x $pg_bin/postgres ]]; then
  echo "flood.sh: PostgreSQL 15 is not installed (scripts/setup.sh installs it; skipped)" >&2
  exit 77
fi
for b in exam_server direct_server exam_worker spike; do
  [[ -x "$bin/$b" ]] || { echo "flood.sh: $bin/$b missing: build first (scripts/setup.sh)" >&2; exit 2; }
done
# shellcheck source=benchmarks/lib.sh
source "$here/benchmarks/lib.sh"
scratch flood
export INGEST_JWT_SECRET="flood-$RANDOM-$RANDOM-$RANDOM"

failures=0

[[ $sink == postgres ]] && start_postgres

if [[ $abuse -eq 1 ]]; then
  dir="$work/run-abuse"
  mkdir -p "$dir"
  start exam_server "$dir/server.log" "$bin/exam_server" --listen 127.0.0.1:0 --data "$dir" --rate "$consumer_rate" \
    --student-rate 10 --student-burst 20 --ip-rate 5000 --ip-burst 10000
  qpid=$pid
  legit() {
    "$bin/spike" --url "$url" --rate "$legit_rate" --duration "$open_seconds" --connections 200 --db "$dir/exam.db" \
      --server-pid "$qpid" --label "$1" --json "$out/$1.json" || failures=$((failures + 1))
  }
  legit students-alone
  "$bin/spike" --url "$url" --rate "$abuse_rate" --duration $((open_seconds + 3)) --connections 200 --one-student \
    --bind 127.0.0.2 --retries 0 --label abuser --json "$out/abuser.json" >"$dir/abuser.log" 2>&1 &
  apid=$!
  sleep 1.5
  legit students-under-abuse
  wait "$apid" || true
  stop "$qpid" exam_server "$dir/server.log"
  echo
  echo "## Rate limits: students at $legit_rate/s for ${open_seconds}s, alone and during an abusive client's flood"
  echo "## (abuser: one account from 127.0.0.2 at up to $abuse_rate/s; limits 10/s per student, 5000/s per address)"
  echo
  "$bin/spike" report "$out/students-alone.json" "$out/students-under-abuse.json" "$out/abuser.json"
  echo
  echo "results: $out"
  [[ $failures -eq 0 ]] || { echo "flood.sh: $failures audit(s) failed" >&2; exit 1; }
  exit 0
fi

# start_stack LABEL N SERVER ARGS...: a fresh server (and broker, worker, database as
# --backend and --sink say) for one run; sets dir, db, spid, url, nats_pid, worker_pid.
start_stack() {
  local label=$1 n=$2 server=$3
  shift 3
  dir="$work/run-$label-$n" nats_pid="" worker_pid="" db="$work/run-$label-$n/exam.db"
  mkdir -p "$dir"
  local queue_args=() db_args=()
  if [[ $sink == postgres ]]; then
    db=$(fresh_database "run_${label}_$n")
    db_args=(--db "$db")
  fi
  if [[ $server == exam_server && $backend == memory ]]; then
    queue_args=(--queue memory)
  fi
  if [[ $server == exam_server && $backend == nats ]]; then
    local port
    port=$(free_port)
    nats-server -js -a 127.0.0.1 -p "$port" -sd "$dir/nats" >"$dir/nats.log" 2>&1 &
    nats_pid=$!
    pids+=("$nats_pid")
    # exam_worker gives up at once when nothing listens yet: wait for the server.
    wait_for_log "$dir/nats.log" "Server is ready"
    queue_args=(--queue "nats://127.0.0.1:$port" --workers 0)
    "$bin/exam_worker" --data "$dir" --queue "nats://127.0.0.1:$port" --rate "$consumer_rate" "${db_args[@]}" \
      >"$dir/worker.log" 2>&1 &
    worker_pid=$!
    pids+=("$worker_pid")
  fi
  if [[ $server == exam_server && $backend == sqs ]]; then
    local port
    port=$(free_port)
    node "$fauxqs_dir/fauxqs.mjs" --port "$port" >"$dir/fauxqs.log" 2>&1 &
    nats_pid=$!
    pids+=("$nats_pid")
    wait_for_log "$dir/fauxqs.log" listening
    local queue_url="sqs+http://127.0.0.1:$port/000000000000/exam-submissions"
    queue_args=(--queue "$queue_url" --workers 0)
    "$bin/exam_worker" --data "$dir" --queue "$queue_url" --rate "$consumer_rate" "${db_args[@]}" >"$dir/worker.log" 2>&1 &
    worker_pid=$!
    pids+=("$worker_pid")
  fi
  start "$server" "$dir/server.log" "$bin/$server" --listen 127.0.0.1:0 --data "$dir" --student-rate 0 "${queue_args[@]}" "${db_args[@]}" "$@"
  spid=$pid
}

# stop_stack SERVER: drains what start_stack started.
stop_stack() {
  if [[ -n "$worker_pid" ]] && ! kill -0 "$worker_pid" 2>/dev/null; then
    echo "flood.sh: exam_worker exited during the run:" >&2
    tail -5 "$dir/worker.log" >&2
  fi
  stop "$spid" "$1" "$dir/server.log"
  [[ -n "$worker_pid" ]] && stop "$worker_pid" exam_worker "$dir/worker.log"
  [[ -n "$nats_pid" ]] && kill -TERM "$nats_pid" && wait "$nats_pid" || true
  # Let this run's dirty pages reach the disk before the next run starts, so that one
  # server's writeback does not land in the other's measurement.
  rm -rf "$dir/nats"
  sync
  sleep 1
}

# wall LABEL SERVER N ARGS...: one audited flood against a fresh server.
wall() {
  local label=$1 server=$2 n=$3 rc=0
  shift 3
  start_stack "$label" "$n" "$server" "$@"
  # A quick run drains in seconds: give up after a minute rather than at the test's timeout.
  local drain_timeout=300
  [[ $quick -eq 1 ]] && drain_timeout=60
  "$bin/spike" --url "$url" --exam demo --students "$students" --window "$window" --db "$db" \
    --server-pid "$spid" --label "$label" --json "$out/$label-$n.json" --svg "$out/$label-$n.svg" \
    --drain-timeout "$drain_timeout" || rc=$?
  stop_stack "$server"
  if [[ $rc -ne 0 ]]; then
    echo "flood.sh: the audit of $label run $n failed" >&2
    failures=$((failures + 1))
  fi
}

if [[ $streams != 0 ]]; then
  # Alone, with N event streams, with N students polling every 2 s: in turn, fresh stacks.
  for n in $(seq "$runs"); do
    for label in accept-only accept+streams accept+polls; do
      extra=()
      [[ $label == accept+streams ]] && extra=(--streams "$streams")
      [[ $label == accept+polls ]] && extra=(--poll-rate $((streams / 2)) --poll-connections 128)
      start_stack "$label" "$n" exam_server --workers 0
      "$bin/spike" --url "$url" --rate "$open_rate" --duration "$open_seconds" --connections 1000 \
        --server-pid "$spid" --label "$label" --json "$out/$label-$n.json" "${extra[@]}" ||
        failures=$((failures + 1))
      stop_stack exam_server
    done
  done
  echo
  echo "## Status followers: open loop at $open_rate/s for ${open_seconds}s, alone, with $streams event streams, with $streams students polling every 2 s"
  echo
  files=()
  for label in accept-only accept+streams accept+polls; do
    for n in $(seq "$runs"); do files+=("$out/$label-$n.json"); done
  done
  "$bin/spike" report "${files[@]}"
  echo
  for n in $(seq "$runs"); do
    python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['streams']; p=json.load(open(sys.argv[2]))['polls']
print('run %s: streams %d open (%d still open at the end), server RSS %.1f MiB before, %.1f MiB with them; polls %.0f/s sent, p99 %.1f ms' % (sys.argv[3], s['opened'], s['open_at_end'], s['server_rss_before_mb'], s['server_rss_with_mb'], p['sent_per_s'], p['p99_ms']))" \
      "$out/accept+streams-$n.json" "$out/accept+polls-$n.json" "$n"
  done
  echo "results: $out"
  [[ $failures -eq 0 ]] || { echo "flood.sh: $failures run(s) failed" >&2; exit 1; }
  exit 0
fi

if [[ $attachments != 0 ]]; then
  # The accept path with submissions that name files (references checked by their tag,
  # no storage call) against without, alternately, each on a fresh stack. No graders:
  # the files were never uploaded, and what is measured is the accept path alone.
  for n in $(seq "$runs"); do
    for files in 0 "$attachments"; do
      if [[ $files == 0 ]]; then label=answers-only; else label=with-$files-files; fi
      start_stack "$label" "$n" exam_server --workers 0
      "$bin/spike" --url "$url" --rate "$open_rate" --duration "$open_seconds" --connections 1000 \
        --attachments "$files" --server-pid "$spid" --label "$label" --json "$out/$label-$n.json" ||
        failures=$((failures + 1))
      stop_stack exam_server
    done
  done
  echo
  echo "## Attachment references: open loop at $open_rate/s for ${open_seconds}s ($backend), without and with $attachments per submission"
  echo
  files=()
  for n in $(seq "$runs"); do files+=("$out/answers-only-$n.json"); done
  for n in $(seq "$runs"); do files+=("$out/with-$attachments-files-$n.json"); done
  "$bin/spike" report "${files[@]}"
  echo "results: $out"
  [[ $failures -eq 0 ]] || { echo "flood.sh: $failures run(s) failed" >&2; exit 1; }
  exit 0
fi

if [[ $poll_rate != 0 ]]; then
  # The open loop against exam_server with and without students polling their status,
  # alternately, each on a fresh stack: what the reads cost the accept path.
  for n in $(seq "$runs"); do
    for polls in 0 "$poll_rate"; do
      if [[ $polls == 0 ]]; then label=accept-only; else label=accept+polls; fi
      start_stack "$label" "$n" exam_server --rate "$consumer_rate" "${read_nice[@]}"
      "$bin/spike" --url "$url" --rate "$open_rate" --duration "$open_seconds" --connections 1000 --db "$db" \
        --poll-rate "$polls" --poll-connections 128 --server-pid "$spid" --label "$label" --json "$out/$label-$n.json" --drain-timeout 600 ||
        failures=$((failures + 1))
      stop_stack exam_server
    done
  done
  echo
  echo "## Status reads: open loop at $open_rate/s for ${open_seconds}s ($backend, sink $sink), alone and with $poll_rate status reads/s"
  echo
  files=()
  for n in $(seq "$runs"); do files+=("$out/accept-only-$n.json"); done
  for n in $(seq "$runs"); do files+=("$out/accept+polls-$n.json"); done
  "$bin/spike" report "${files[@]}"
  echo
  for n in $(seq "$runs"); do
    python3 -c "import json,sys; p=json.load(open(sys.argv[1]))['polls']
print('reads run %s: %.0f/s sent, p50 %.1f ms, p99 %.1f ms, answers %s' % (sys.argv[2], p['sent_per_s'], p['p50_ms'], p['p99_ms'], json.dumps(p['answers'])))" \
      "$out/accept+polls-$n.json" "$n"
  done
  echo "results: $out"
  [[ $failures -eq 0 ]] || { echo "flood.sh: $failures audit(s) failed" >&2; exit 1; }
  exit 0
fi

for n in $(seq "$runs"); do
  pool=8
  [[ $sink != postgres ]] || pool=100
  if [[ $quick -eq 0 || $backend == sqlite ]]; then wall direct direct_server "$n" --pool-size "$pool"; fi
  wall "queue-$backend" exam_server "$n" --rate "$consumer_rate"
done

echo
sink_text="exam.db (SQLite)"
if [[ $sink == postgres ]]; then
  sink_text="PostgreSQL 15"
  [[ $small_db -eq 0 ]] || sink_text+=" on one core, max_connections 100, shared_buffers 16MB"
fi
echo "## Deadline flood: $students students within ${window}s, $runs run(s), consumer rate $consumer_rate rows/s, into $sink_text"
echo
labels=()
for n in $(seq "$runs"); do
  [[ -f "$out/direct-$n.json" ]] && labels+=("$out/direct-$n.json")
done
for n in $(seq "$runs"); do labels+=("$out/queue-$backend-$n.json"); done
"$bin/spike" report "${labels[@]}"

if [[ ($quick -eq 0 || ${#burst_args[@]} -gt 0) && $sink == sqlite ]]; then
  # Open loop: a constant rate on 1,000 connections, latency from the scheduled time.
  dir="$work/run-open"
  mkdir -p "$dir"
  if ((${#burst_args[@]} == 0)); then
    # The bare HTTP layer at the same rate, for the ratio table (a burst has none; a
    # build without benchmarks has no bare_http).
    start bare_http "$dir/bare.log" "$build/benchmarks/bare_http" --listen 127.0.0.1:0
    bpid=$pid
    "$bin/spike" --url "$url" --rate "$open_rate" --duration "$open_seconds" --connections 1000 \
      --server-pid "$bpid" --label bare-202 --json "$out/open-bare.json"
    kill -TERM "$bpid"; wait "$bpid" || true
  fi
  start_stack open 1 exam_server --rate "$consumer_rate"
  broker_cpu=""
  [[ -n $nats_pid ]] && broker_cpu=$(cpu_of "$nats_pid")
  "$bin/spike" --url "$url" --rate "$open_rate" --duration "$open_seconds" --connections 1000 --db "$db" \
    --server-pid "$spid" --label "queue-open" --json "$out/open-queue.json" --drain-timeout 600 "${burst_args[@]}" ||
    failures=$((failures + 1))
  # The broker's CPU from the flood's start until the drain (the graders' fetches included).
  [[ -n $broker_cpu ]] && broker_cpu=$(awk -v a="$broker_cpu" -v b="$(cpu_of "$nats_pid")" 'BEGIN { printf "%.2f", b - a }')
  stop_stack exam_server
  echo
  if ((${#burst_args[@]})); then
    # Every submission scheduled in the burst's first second got its receipt on the
    # first try, counted in that second (spike counts a retried one nowhere there). Only
    # for a whole rate over at least one second.
    if [[ ${burst_args[1]} =~ ^[0-9]+$ ]] && awk -v s="${burst_args[3]}" 'BEGIN { exit !(s >= 1) }' &&
      ! grep -q "\"scheduled_latency_by_second\":\[{\"receipts\":${burst_args[1]}," "$out/open-queue.json"; then
      echo "flood.sh: fewer than ${burst_args[1]} submissions of the burst's first second got their receipt on the first try (retried, lost or counted elsewhere): $out/open-queue.json" >&2
      failures=$((failures + 1))
    fi
    # Unequal loads: no ratio table; spike printed the queue's seconds above.
    echo "## Open loop: ${burst_args[1]}/s for ${burst_args[3]}s, then $open_rate/s until ${open_seconds}s, on 1,000 connections ($backend)"
    echo
    "$bin/spike" report "$out/open-queue.json"
  else
    echo "## Open loop: $open_rate submissions/s for ${open_seconds}s on 1,000 connections ($backend)"
    echo
    "$bin/spike" report "$out/open-bare.json" "$out/open-queue.json"
  fi
  [[ -n $broker_cpu ]] && echo && echo "broker ($backend) CPU, flood and drain: $broker_cpu s"
fi

echo
echo "results, charts: $out"
if [[ $failures -ne 0 ]]; then
  echo "flood.sh: $failures audit(s) failed" >&2
  exit 1
fi
