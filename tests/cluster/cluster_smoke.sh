#!/usr/bin/env bash
# scripts/cluster.sh end to end: `up` (three NATS nodes, R3 stream, PostgreSQL, three
# exam_servers, two exam_workers), a receipt from one server answered by another while
# every worker is stopped (received) and after they are back (graded), a short flood
# spread over the three servers with the audit in PostgreSQL, `down`, and no process
# left behind.
#
#   tests/cluster/cluster_smoke.sh [--build DIR] [--students N]
#
# Exit 77: nats-server or PostgreSQL 15 is missing here.
set -euo pipefail
name=cluster_smoke students=2000
source "$(dirname "$0")/common.sh"

"$cluster" up --dir "$dir" --build "$build" --base "$base" >"$dir/up.txt" || fail "up failed"
grep -q "student token:" "$dir/up.txt" || fail "up printed no token"
export INGEST_JWT_SECRET
INGEST_JWT_SECRET=$(<"$dir/secret")
s1="http://127.0.0.1:$((base + 1))" s3="http://127.0.0.1:$((base + 3))"
db="postgresql://exam@127.0.0.1:$((base + 40))/exams"
tok=$("$build/examples/exam_server" token --sub smoke-student --role student)

# Every worker stopped: a receipt from server 1 is "received" on server 3, then graded.
kill -TERM "$(<"$dir/worker1/pid")" "$(<"$dir/worker2/pid")"
for _ in $(seq 300); do kill -0 "$(<"$dir/worker1/pid")" 2>/dev/null || kill -0 "$(<"$dir/worker2/pid")" 2>/dev/null || break; sleep 0.1; done
answer=$(curl -s -X POST "$s1/v1/exams/demo/submissions" -H "Authorization: Bearer $tok" \
  -H 'Content-Type: application/json' -H 'Idempotency-Key: smoke-1' -d '{"answers":{"q1":"B"}}')
id=$(json_field receipt_id <<<"$answer")
[[ -n $id ]] || fail "no receipt: $answer"
status=$(curl -s "$s3/v1/submissions/$id" -H "Authorization: Bearer $tok" | json_field status)
[[ $status == received ]] || fail "server 3 said '$status' for a receipt of server 1 with no worker running"
again=$(curl -s -X POST "$s3/v1/exams/demo/submissions" -H "Authorization: Bearer $tok" \
  -H 'Content-Type: application/json' -H 'Idempotency-Key: smoke-1' -d '{"answers":{"q1":"B"}}')
[[ $(json_field receipt_id <<<"$again") == "$id" ]] || fail "the same key on server 3 got another receipt: $again"
"$cluster" up --dir "$dir" --build "$build" >/dev/null 2>&1 && fail "a second up while running must refuse"
for i in 1 2; do
  (cd "$dir/worker$i" && exec setsid "$build/examples/exam_worker" --data "$dir/worker$i/data" \
    --queue "nats://127.0.0.1:$((base + 11)),127.0.0.1:$((base + 12)),127.0.0.1:$((base + 13))?replicas=3" \
    --sink "$db" --workers 2 --exams "$dir/exams.json" >>"$dir/worker$i/log" 2>&1 </dev/null) &
  echo $! >"$dir/worker$i/pid"
done
for _ in $(seq 300); do
  status=$(curl -s "$s3/v1/submissions/$id" -H "Authorization: Bearer $tok" | json_field status)
  [[ $status == graded ]] && break
  sleep 0.1
done
[[ $status == graded ]] || fail "not graded 30 s after the workers came back ($status)"

# A short flood over the three servers, audited in PostgreSQL.
"$build/examples/spike" --url "$s1,http://127.0.0.1:$((base + 2)),$s3" --students "$students" --window 1 \
  --db "$db" --drain-timeout 120 >"$dir/spike.txt" 2>&1 || { cat "$dir/spike.txt" >&2; fail "spike failed its audit"; }
grep -q "lost 0, duplicated 0" "$dir/spike.txt" || { cat "$dir/spike.txt" >&2; fail "audit"; }
for i in 1 2 3; do
  grep -q "2xx from 127.0.0.1:$((base + i)) " "$dir/spike.txt" || fail "server $i answered no student"
done

pids=()
for f in "$dir"/*/pid; do pids+=("$(<"$f")"); done
"$cluster" down --dir "$dir" >/dev/null || fail "down failed"
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && fail "process $p still running after down"; done
[[ -d $dir/postgres/data ]] || fail "down without --wipe removed the data"
echo "cluster_smoke: passed ($(grep -m1 'students with a receipt' "$dir/spike.txt" | sed 's/^ *//'))"
