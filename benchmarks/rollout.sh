#!/usr/bin/env bash
# Moving a live platform to the queue, over HTTP with the real binaries (direct_server
# plays the platform's existing submit path, exam_worker grades what the queue gets):
#
#   cost    what dual writing costs the direct path: the open loop against direct_server
#           alone and with --shadow-queue, alternately, each on a fresh stack; every run
#           is audited (each receipt its row, exactly once) and every dual-write run must
#           then reconcile clean (every row its copy, same body, same score).
#   outage  dual write while the queue is down: a wall of students against
#           direct_server --shadow-queue nats://, nats-server SIGKILLed a quarter into
#           the wall and started again on the same store a while later. No request may
#           fail; every copy reconcile then finds missing must have been reported as a
#           gap (exam_shadow_total{outcome="failed"|"skipped"}); `reconcile --resend`
#           and the graders must make it clean.
#   ramp    the rollout share moved 0 -> 30 -> 70 -> 100 -> 50 -> 0 % through
#           PUT /v1/admin/rollout during a wall in which a fifth of the students click a
#           second time half a window later (after a move, mostly), no grader running
#           until the wall is over: every retry must get its first receipt (a student
#           who switched paths would hold two), every receipt its row exactly once
#           across both paths, and reconcile must be clean.
#
#   benchmarks/rollout.sh [cost|outage|ramp ...] [--backend sqlite|nats] [--sink sqlite|postgres]
#                         [--runs 3] [--open-rate 2000] [--open-seconds 5] [--students 3000]
#                         [--window 3] [--queue-options QUERY] [--build build] [--out DIR]
#   benchmarks/rollout.sh --quick [--backend nats] [--sink postgres]   # all three, small, once (CI)
#       (1,000 students in 3 s and 500/s; on PostgreSQL 600 in 4 s and 150/s; --quick
#       fixes these whatever else is given)
#
# Without a part named, all three run. --backend is the shadow queue of `cost` and
# `ramp` (sqlite: the embedded queue in a file of the run's directory); `outage` always
# uses nats-server. --queue-options adds a query to the shadow queue's URL (e.g.
# commit_linger=5ms for the embedded queue). --sink postgres starts one PostgreSQL 15
# (see flood.sh) and gives every run a fresh database on it. Each exam_worker serves
# its metrics; a dead letter on any path fails the run.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=3 open_rate=2000 open_seconds=5 students=3000 window=3 build="$here/build" out="" backend=sqlite sink=sqlite
small_db=0 parts=() queue_options="" patience=120 quick=0
while [[ $# -gt 0 ]]; do
  case $1 in
    cost | outage | ramp) parts+=("$1"); shift ;;
    --backend) backend=$2; shift 2 ;;
    --sink) sink=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --open-rate) open_rate=$2; shift 2 ;;
    --open-seconds) open_seconds=$2; shift 2 ;;
    --students) students=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --queue-options) queue_options="?$2"; shift 2 ;;
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "rollout.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ ${#parts[@]} -gt 0 ]] || parts=(cost outage ramp)
if [[ $quick -eq 1 ]]; then
  runs=1 open_seconds=2 patience=45 open_rate=500 students=1000 window=3
  # On PostgreSQL below direct_server's own ceiling there (benchmarks/README.md), so
  # that a refusal can only be the copies' doing.
  [[ $sink != postgres ]] || open_rate=150 students=600 window=4
fi
bin="$build/examples"
pg_bin=/usr/lib/postgresql/15/bin
if ! command -v nats-server >/dev/null && [[ $backend == nats || " ${parts[*]} " == *" outage "* ]]; then
  echo "rollout.sh: nats-server is not installed (skipped)" >&2
  exit 77
fi
if [[ $sink == postgres ]] && [[ ! -x $pg_bin/postgres ]]; then
  echo "rollout.sh: PostgreSQL 15 is not installed (scripts/setup.sh installs it; skipped)" >&2
  exit 77
fi
for b in direct_server exam_worker spike; do
  [[ -x "$bin/$b" ]] || { echo "rollout.sh: $bin/$b missing: build first (scripts/setup.sh)" >&2; exit 2; }
done
# shellcheck source=benchmarks/lib.sh
source "$here/benchmarks/lib.sh"
scratch rollout
# The broker the outage starts again is not this shell's child: killed by its pid file.
trap 'for f in "$work"/run-*/nats.pid; do [[ ! -s $f ]] || kill -KILL "$(cat "$f")" 2>/dev/null || true; done; cleanup' EXIT
export INGEST_JWT_SECRET="rollout-$RANDOM-$RANDOM-$RANDOM"
export INGEST_ADMIN_TOKEN="admin-$RANDOM-$RANDOM-$RANDOM"
[[ $sink == postgres ]] && start_postgres

failures=0
fail() {
  echo "rollout.sh: $*" >&2
  failures=$((failures + 1))
}

# start_nats DIR [PORT]: nats-server with JetStream on DIR/nats; sets nats_pid, nats_port.
start_nats() {
  nats_port=${2:-$(free_port)}
  nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$1/nats" >>"$1/nats.log" 2>&1 &
  nats_pid=$!
  pids+=("$nats_pid")
  wait_for_log "$1/nats.log" "Server is ready"
}

# start_stack LABEL N QUEUE [DIRECT_SERVER ARGS...]: a fresh run directory and sink, and
# direct_server; with QUEUE (sqlite|nats) also the shadow queue and exam_worker on it.
# Sets dir, db, sink_args, queue_url, spid, url, worker_pid, nats_pid, nats_port.
start_stack() {
  local label=$1 n=$2 queue=$3
  shift 3
  dir="$work/run-$label-$n" db="$work/run-$label-$n/exam.db" queue_url="" worker_pid="" nats_pid=""
  mkdir -p "$dir"
  sink_args=()
  if [[ $sink == postgres ]]; then
    db=$(fresh_database "run_${label}_$n")
    sink_args=(--db "$db")
  fi
  local shadow=()
  if [[ $queue == sqlite ]]; then queue_url="sqlite://$dir/shadow-queue.db$queue_options"; fi
  if [[ $queue == nats ]]; then
    start_nats "$dir"
    queue_url="nats://127.0.0.1:$nats_port$queue_options"
  fi
  [[ -z $queue_url ]] || shadow=(--shadow-queue "$queue_url")
  start direct_server "$dir/server.log" "$bin/direct_server" --listen 127.0.0.1:0 --data "$dir" --student-rate 0 \
    "${sink_args[@]}" "${shadow[@]}" "$@"
  spid=$pid
  if [[ -n $queue_url ]]; then
    # With worker_gate (spike's output file), the graders start worker_delay seconds
    # after spike's wall began: held back, as in a deadline backlog.
    bash -c 'trap "exit 0" TERM  # stopped before it started: nothing to drain
             for _ in $(seq 600); do [[ -z $0 ]] || grep -qs "connections open" "$0" && break; sleep 0.05; done
             sleep "$1"; shift; exec "$@"' "${worker_gate:-}" "${worker_delay:-0}" \
      "$bin/exam_worker" --data "$dir" --queue "$queue_url" --metrics 127.0.0.1:0 "${sink_args[@]}" \
      >"$dir/worker.log" 2>&1 &
    worker_pid=$!
    pids+=("$worker_pid")
  fi
}

# end_process PID: SIGTERM, then up to 10 s for it to be gone (a child or not).
end_process() {
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  echo "rollout.sh: process $1 still runs 10 s after SIGTERM" >&2
}

# no_dead_letters: the graders dead-lettered nothing, on any path (exam_worker --metrics).
no_dead_letters() {
  local at dead
  at=$(sed -n 's/.*metrics on \(http:[^ ]*\).*/\1/p' "$dir/worker.log" | head -1)
  if [[ -z $at ]]; then
    fail "exam_worker did not say where its metrics are"
    return 0
  fi
  dead=$(curl -fsS "$at" | awk '$1 ~ /^exam_worker_dead_letters_total/ { n += $2 } END { print n + 0 }') || dead=unknown
  [[ $dead == 0 ]] || fail "the graders dead-lettered $dead submission(s)"
}

# stop_workers: the graders (checked first), then the broker.
stop_workers() {
  if [[ -n $worker_pid ]]; then
    if kill -0 "$worker_pid" 2>/dev/null; then
      no_dead_letters
    else
      fail "exam_worker exited during the run"
      tail -5 "$dir/worker.log" >&2
    fi
    stop "$worker_pid" exam_worker "$dir/worker.log"
  fi
  [[ -z $nats_pid ]] || end_process "$nats_pid"
}

# stop_stack: drains what start_stack started (the server first: its copies finish).
stop_stack() {
  stop "$spid" direct_server "$dir/server.log"
  stop_workers
  rm -rf "$dir/nats"
  sync
  sleep 1
}

# reconcile [SHOW]: exam_worker reconcile over the last hour of this stack's sink,
# listing SHOW keys per kind (default 5); the report in $dir/reconcile.txt, its exit
# code in rc (0 clean, 1 discrepancies).
reconcile() {
  rc=0
  "$bin/exam_worker" --data "$dir" "${sink_args[@]}" reconcile --since 1h --show "${1:-5}" >"$dir/reconcile.txt" \
    2>"$dir/reconcile.err" || rc=$?
  if [[ $rc -ge 2 ]]; then
    fail "reconcile failed:"
    cat "$dir/reconcile.err" >&2
  fi
}
# count_of KIND: the count reconcile's report gives for KIND (missing, extra, different).
count_of() { sed -n "s/.*[ ,]$1 \([0-9]*\).*/\1/p" "$dir/reconcile.txt" | head -1; }

# wall_started FILE: waits (30 s at most) for spike's "connections open" in FILE; its
# wall starts 0.2 s after that line.
wall_started() {
  for _ in $(seq 600); do
    grep -qs "connections open" "$1" && break
    sleep 0.05
  done
  sleep 0.2
}

# reconcile_until_clean SECONDS: the graders catch up; reconcile must come out clean.
reconcile_until_clean() {
  local deadline=$((SECONDS + $1))
  while :; do
    reconcile
    [[ $rc -eq 0 || $rc -ge 2 ]] && return 0  # clean, or failed (and counted)
    [[ $SECONDS -lt $deadline ]] || break
    sleep 1
  done
  fail "reconcile of $dir is not clean after $1 s:"
  cat "$dir/reconcile.txt" >&2
}

# metric NAME_AND_LABELS: a counter from direct_server's /metrics (0 when absent).
metric() {
  curl -fsS "$url/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }'
}

# spike_run LABEL N ARGS...: spike against the stack, audited in its sink; failed
# requests (answered with an error, or not at all, after the retries) fail the run.
spike_run() {
  local label=$1 n=$2 code=0
  shift 2
  "$bin/spike" --url "$url" --db "$db" --server-pid "$spid" --label "$label" --json "$out/$label-$n.json" \
    --drain-timeout "$patience" "$@" >"$out/$label-$n.txt" 2>&1 || code=$?
  cat "$out/$label-$n.txt"
  [[ $code -eq 0 ]] || fail "the audit of $label run $n failed"
  python3 - "$out/$label-$n.json" <<'EOF' || fail "$label run $n: requests failed for students"
import json, sys
r = json.load(open(sys.argv[1]))
bad = r["failed_requests"] + r["gave_up"]
if bad:
    print("%s: %d request(s) failed: %s" % (r["label"], bad, json.dumps(r["errors"])), file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}

part_cost() {
  local files=()
  for n in $(seq "$runs"); do
    for label in direct-only dual-write; do
      local queue=""
      [[ $label == direct-only ]] || queue=$backend
      start_stack "$label" "$n" "$queue"
      spike_run "$label" "$n" --rate "$open_rate" --duration "$open_seconds" --connections 500
      files+=("$out/$label-$n.json")
      if [[ -n $queue ]]; then
        local gaps
        gaps=$(metric 'exam_shadow_total{outcome="failed"}')
        [[ $gaps -eq 0 ]] || fail "$label run $n: $gaps copies failed with the queue up"
        reconcile_until_clean "$patience"
      fi
      stop_stack
    done
  done
  echo
  echo "## Dual write: open loop at $open_rate/s for ${open_seconds}s against direct_server alone and with --shadow-queue ($backend), sink $sink, $runs run(s)"
  echo
  "$bin/spike" report "${files[@]}"
}

# gap_keys: the keys of the copies direct_server reported as gaps (its shadow_gap events).
gap_keys() {
  python3 -c '
import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "shadow_gap":
        print(e["key"])' "$dir/server.log" | sort -u
}
# missing_keys: the keys reconcile's last report lists as missing.
missing_keys() { sed -n 's/^missing \([^ ]*\) row .*/\1/p' "$dir/reconcile.txt" | sort -u; }

part_outage() {
  start_stack outage 1 nats
  local down_at down_for spike_out="$out/outage-1.txt"
  down_at=$(python3 -c "print('%.2f' % ($window * 0.25))")
  down_for=$(python3 -c "print('%.2f' % max(1.0, $window * 0.4))")
  rm -f "$spike_out" "$dir/nats.pid"
  # The queue dies a quarter into the wall and comes back on the same port and store.
  (
    set +e
    wall_started "$spike_out"
    sleep "$down_at"
    echo "outage: nats-server SIGKILLed"
    kill -KILL "$nats_pid"
    sleep "$down_for"
    nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$dir/nats" >"$dir/nats-again.log" 2>&1 &
    echo $! >"$dir/nats.pid"
  ) &
  local injector=$!
  pids+=("$injector")
  spike_run outage 1 --students "$students" --window "$window"
  wait "$injector" || true
  if [[ ! -s $dir/nats.pid ]]; then
    fail "outage: nats-server was not started again"
    stop_stack
    return 0
  fi
  nats_pid=$(cat "$dir/nats.pid")
  pids+=("$nats_pid")
  wait_for_log "$dir/nats-again.log" "Server is ready"
  local reported
  reported=$(metric 'exam_shadow_total{outcome="failed"}')
  reported=$((reported + $(metric 'exam_shadow_total{outcome="skipped"}')))
  # The server's copies end (sent or reported) before reconcile may judge them.
  stop "$spid" direct_server "$dir/server.log"
  local gaps
  gaps=$(gap_keys | wc -l)
  echo "queue down ${down_for}s from ${down_at}s into the wall: $reported copies reported as gaps ($gaps keys logged)"
  [[ $gaps -gt 0 ]] || fail "outage: the queue was down and no copy was reported missing: nothing was tested"
  # Every copy still missing once the graders have caught up was reported: no silent gap.
  local deadline=$((SECONDS + patience)) silent=""
  while :; do
    reconcile 1000000
    silent=$(comm -23 <(missing_keys) <(gap_keys))
    [[ -z $silent || $SECONDS -ge $deadline ]] && break
    sleep 1
  done
  echo "reconcile after the outage: $(grep -m1 '^matched' "$dir/reconcile.txt")"
  [[ $(missing_keys | wc -l) -eq $(count_of missing) ]] || fail "outage: reconcile's missing keys could not be read"
  if [[ -n $silent ]]; then
    fail "outage: copies missing that were never reported as gaps:"
    echo "$silent" | head -20 >&2
  fi
  local resent=0
  "$bin/exam_worker" --data "$dir" "${sink_args[@]}" --queue "$queue_url" reconcile --since 1h --resend \
    >"$dir/resend.txt" 2>&1 || resent=$?
  grep -m1 "re-sent" "$dir/resend.txt" || true
  [[ $resent -le 1 ]] || { fail "outage: reconcile --resend failed:"; tail -5 "$dir/resend.txt" >&2; }
  reconcile_until_clean "$patience"
  [[ $rc -ne 0 ]] || echo "reconcile after --resend: clean ($(grep -m1 '^matched' "$dir/reconcile.txt"))"
  stop_workers
}

# rollout_share PERCENT: PUT /v1/admin/rollout; prints the answer.
rollout_share() {
  curl -fsS -X PUT "$url/v1/admin/rollout" -H "Authorization: Bearer $INGEST_ADMIN_TOKEN" \
    -d "{\"queue_percent\": $1}" || echo "PUT /v1/admin/rollout $1 failed"
}

part_ramp() {
  local step again
  step=$(python3 -c "print('%.3f' % ($window / 6))")
  again=$(python3 -c "print('%.3f' % ($window / 2))")
  local spike_out="$out/ramp-1.txt"
  rm -f "$spike_out"
  # No grader runs until the wall is over: a retry that left its first path would
  # find nothing stored there and be stored twice, under two receipts.
  worker_gate=$spike_out worker_delay=$(python3 -c "print('%.3f' % ($window * 1.5 + 0.5))")
  start_stack ramp 1 "$backend" --queue-percent 0
  worker_gate="" worker_delay=0
  # Every step is a sixth of the wall; the second clicks come half a wall later.
  (
    wall_started "$spike_out"
    for share in 30 70 100 50 0; do
      sleep "$step"
      echo "share $share %: $(rollout_share "$share")"
    done
  ) >"$dir/ramp.log" 2>&1 &
  local mover=$!
  pids+=("$mover")
  spike_run ramp 1 --students "$students" --window "$window" --double-click 0.2 --click-again "$again"
  wait "$mover" || true
  cat "$dir/ramp.log"
  grep -q "failed" "$dir/ramp.log" && fail "ramp: a move of the share was refused"
  local state
  state=$(curl -fsS "$url/v1/admin/rollout" -H "Authorization: Bearer $INGEST_ADMIN_TOKEN")
  echo "rollout after the wall: $state"
  python3 -c '
import json, sys
s = json.loads(sys.argv[1])
sys.exit(0 if s["routed_direct"] > 0 and s["routed_queue"] > 0 and s["pinned_answers"] > 0 else 1)' "$state" ||
    fail "ramp: one path took nothing, or no retry came against the share: nothing was tested"
  reconcile_until_clean "$patience"
  [[ $rc -ne 0 ]] || echo "reconcile after the ramp: clean ($(grep -m1 '^matched' "$dir/reconcile.txt"))"
  stop_stack
}

for part in "${parts[@]}"; do "part_$part"; done
echo
echo "results: $out"
if [[ $failures -ne 0 ]]; then
  echo "rollout.sh: $failures check(s) failed" >&2
  exit 1
fi
