#!/usr/bin/env bash
# How fast exam_worker drains a NATS backlog into PostgreSQL, against the PostgreSQL
# writes alone (postgres_bench's BM_pg_exam_handler: the same rows, batches of 1,000,
# no queue) in the same invocation.
#
#   benchmarks/drain.sh [--submissions 50000] [--batch 1000] [--workers 2] [--partitions 1]
#                       [--runs 3] [--build build] [--quick]
#
# --quick (the ctest drain_smoke): one run of 2,000 submissions over 2 partitions, and
# the handler measured briefly; its figures mean nothing, its checks hold.
#
# Each run: a fresh nats-server (one node, file storage) and a fresh database on one
# PostgreSQL 15; exam_server (no graders) takes the submissions from spike; then
# exam_worker starts with the whole backlog waiting and is timed from its start until
# the last row is in PostgreSQL. Every run is checked: as many rows as receipts, and no
# dead letter. The submissions arrive in the open loop (a fifth of them per second for 5 s
# on 1,000 connections).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
submissions=50000 batch=1000 workers=2 partitions=1 runs=3 build="$here/build" min_time=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --submissions) submissions=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --quick) submissions=2000 partitions=2 runs=1 min_time=(--benchmark_min_time=0.05); shift ;;
    *) echo "drain.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
bin="$build/examples"
pg_bin=/usr/lib/postgresql/15/bin small_db=0
for b in "$bin/exam_server" "$bin/exam_worker" "$bin/spike" "$build/benchmarks/postgres_bench"; do
  [[ -x $b ]] || { echo "drain.sh: $b missing: build first" >&2; exit 2; }
done
command -v nats-server >/dev/null || { echo "drain.sh: nats-server is not installed" >&2; exit 77; }
[[ -x $pg_bin/postgres ]] || { echo "drain.sh: PostgreSQL 15 is not installed" >&2; exit 77; }

# shellcheck source=benchmarks/lib.sh
source "$here/benchmarks/lib.sh"
out="" # nothing is kept: the figures are printed
scratch drain
rmdir "$out"
export INGEST_JWT_SECRET="drain-$RANDOM-$RANDOM"
start_postgres

rates=() steadies=()
for run in $(seq "$runs"); do
  dir="$work/run-$run"
  mkdir -p "$dir"
  db=$(fresh_database "drain_$run")
  port=$(free_port)
  nats-server -js -a 127.0.0.1 -p "$port" -sd "$dir/nats" >"$dir/nats.log" 2>&1 &
  nats_pid=$!
  pids+=("$nats_pid")
  wait_for_log "$dir/nats.log" "Server is ready"
  queue="nats://127.0.0.1:$port?partitions=$partitions"
  start exam_server "$dir/server.log" "$bin/exam_server" --listen 127.0.0.1:0 --data "$dir" --student-rate 0 \
    --queue "$queue" --workers 0 --db "$db"
  spid=$pid
  "$bin/spike" --url "$url" --rate $((submissions / 5)) --duration 5 --connections 1000 --json "$dir/spike.json" \
    >"$dir/spike.log" 2>&1 ||
    { cat "$dir/spike.log" >&2; exit 1; }
  stop "$spid" exam_server "$dir/server.log"
  receipts=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["receipts"])' "$dir/spike.json")

  t0=$EPOCHREALTIME
  "$bin/exam_worker" --data "$dir" --queue "$queue" --sink "$db" --batch "$batch" --workers "$workers" \
    --metrics 127.0.0.1:0 >"$dir/worker.log" 2>&1 &
  wpid=$!
  pids+=("$wpid")
  rows=0 t1="" first=0
  for _ in $(seq 6000); do  # 10 minutes at most
    rows=$(psql -At "$db" -c "SELECT count(*) FROM submissions" 2>/dev/null || echo 0)
    [[ -z $t1 ]] && ((rows > 0)) && t1=$EPOCHREALTIME first=$rows
    ((rows >= receipts)) && break
    kill -0 "$wpid" 2>/dev/null || { tail -20 "$dir/worker.log" >&2; exit 1; }
    sleep 0.1
  done
  t2=$EPOCHREALTIME
  seconds=$(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.2f", b - a }')
  # From the first rows seen to the last: the worker's start-up (connecting, making its
  # tables) left out.
  steady=$(awk -v a="$t1" -v b="$t2" -v n="$rows" -v f="$first" 'BEGIN { printf "%.0f", (n - f) / (b - a) }')
  stop "$wpid" exam_worker "$dir/worker.log"
  kill -TERM "$nats_pid"; wait "$nats_pid" || true
  dead=$(psql -At "$db" -c "SELECT count(*) FROM exam_dead_letters")
  if ((rows != receipts)) || [[ $dead != 0 ]]; then
    echo "drain.sh: run $run: $rows rows for $receipts receipts, $dead dead letter(s)" >&2
    exit 1
  fi
  rate=$(awk -v n="$rows" -v s="$seconds" 'BEGIN { printf "%.0f", n / s }')
  rates+=("$rate")
  steadies+=("$steady")
  echo "run $run: $rows rows drained in $seconds s: $rate rows/s from the worker's start, $steady rows/s from its first rows (batch $batch, $workers workers, $partitions partition(s))"
done

"$build/benchmarks/postgres_bench" --benchmark_filter=BM_pg_exam_handler --benchmark_repetitions="$runs" \
  "${min_time[@]}" --benchmark_report_aggregates_only=true --benchmark_format=json >"$work/run-handler.json" 2>/dev/null
# The median of the repetitions; one repetition has no aggregate, only its own figure.
handler=$(python3 -c '
import json, sys
runs = json.load(open(sys.argv[1]))["benchmarks"]
medians = [b for b in runs if b.get("aggregate_name") == "median"] or runs[:1]
if medians: print("%.0f" % medians[0]["items_per_second"])' "$work/run-handler.json")
[[ -n $handler ]] || { echo "drain.sh: postgres_bench gave no BM_pg_exam_handler figure" >&2; exit 1; }
median_of() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
median=$(median_of "${rates[@]}")
steady=$(median_of "${steadies[@]}")
echo
echo "| | rows/s (median of $runs) | of the handler alone |"
echo "|---|---|---|"
awk -v a="$median" -v b="$handler" -v s="$steady" -v batch="$batch" -v w="$workers" 'BEGIN {
  printf "| exam_worker, NATS backlog into PostgreSQL (batches of %d, %d workers), from its start | %d | %.2f |\n", batch, w, a, a / b
  printf "| the same, from its first rows | %d | %.2f |\n", s, s / b
  printf "| the handler alone (BM_pg_exam_handler, batches of 1,000, one connection) | %d | 1 |\n", b }'
