#!/usr/bin/env bash
# A fault in the multi-machine topology (scripts/cluster.sh: three NATS nodes with an R3
# stream, PostgreSQL, three exam_servers, two exam_workers) during a deadline flood
# spread over the three servers, then the audit in PostgreSQL: every receipt a student
# was given exactly once (lost 0, duplicated 0), no row without a receipt, no dead
# letter, and probe submissions whose status every live server reports as received,
# processing or graded (never 404) once the broken part is back or left down (within
# 20 s; with every worker stopped, `received` while they are stopped), and `graded` on
# every server after the drain.
#
#   tests/fault/cluster_fault.sh SCENARIO [--build DIR] [--students N]
#
# Scenarios:
#   server_kill     exam_server 2 SIGKILLed mid-flood and left down: its students'
#                   retries go to the other servers with the same keys
#   worker_kill     exam_worker 1 SIGKILLed mid-batch, started again 2 s later
#   nats_node_kill  NATS node 2 SIGKILLed mid-flood, started again on its store 3 s later
#   postgres_restart  PostgreSQL stopped with `-m immediate` mid-flood, started 5 s later
#   workers_paused  both workers stopped (drained) for the flood: every probe reads
#                   `received` on every server, then the workers come back, the backlog
#                   drains and every probe reads `graded`
#
# Exit 77: nats-server or PostgreSQL 15 is missing here.
set -euo pipefail

scenario=${1:?usage: cluster_fault.sh SCENARIO [--build DIR] [--students N]}
shift
case $scenario in
  server_kill | worker_kill | nats_node_kill | postgres_restart | workers_paused) ;;
  *) echo "cluster_fault.sh: unknown scenario $scenario" >&2; exit 2 ;;
esac
name="cluster_fault $scenario" students=3000
source "$(dirname "$0")/../cluster/common.sh"

"$cluster" up --dir "$dir" --build "$build" --base "$base" >"$dir/up.txt" || fail "up failed"
export INGEST_JWT_SECRET
INGEST_JWT_SECRET=$(<"$dir/secret")
urls=("http://127.0.0.1:$((base + 1))" "http://127.0.0.1:$((base + 2))" "http://127.0.0.1:$((base + 3))")
db="postgresql://exam@127.0.0.1:$((base + 40))/exams"
tok=$("$build/examples/exam_server" token --sub probe-student --role student)

# Probes: submissions of one student, each accepted by server 1 (never the one killed),
# retried with the same key on 409 and 503 for up to 20 s as a client would.
probes=()
probe() {
  local key="probe-$scenario-$1" answer id=""
  for _ in $(seq 100); do
    answer=$(curl -s -m 10 -X POST "${urls[0]}/v1/exams/demo/submissions" -H "Authorization: Bearer $tok" \
      -H 'Content-Type: application/json' -H "Idempotency-Key: $key" -d '{"answers":{"q1":"B","q2":"D"}}' || true)
    id=$(json_field receipt_id <<<"$answer")
    [[ -n $id ]] && break
    sleep 0.2
  done
  [[ -n $id ]] || fail "probe $1 got no receipt: $answer"
  probes+=("$id")
}
# eventually_status ALLOWED...: status_everywhere holds within 20 s (a server's first
# read after the database came back may be a 503, which a client retries).
eventually_status() {
  for _ in $(seq 100); do status_everywhere "$@" >/dev/null && return 0; sleep 0.2; done
  status_everywhere "$@"
}
# status_everywhere ALLOWED...: every probe's status on every live server is one of ALLOWED.
status_everywhere() {
  local id u st
  for id in "${probes[@]}"; do
    for u in "${urls[@]}"; do
      [[ $scenario == server_kill && $u == "${urls[1]}" ]] && continue
      st=$(curl -s -m 10 "$u/v1/submissions/$id" -H "Authorization: Bearer $tok" | json_field status)
      [[ " $* " == *" $st "* ]] || { echo "$id on $u: '$st' (expected $*)"; return 1; }
    done
  done
}

[[ $scenario == workers_paused ]] && { "$cluster" stop worker1 --dir "$dir"; "$cluster" stop worker2 --dir "$dir"; }
probe 1
"$build/examples/spike" --url "$(IFS=,; echo "${urls[*]}")" --students "$students" --window 3 --db "$db" \
  --drain-timeout 120 >"$dir/spike.txt" 2>&1 &
spike_pid=$!
sleep 1.5
case $scenario in
  server_kill) "$cluster" stop server2 --kill --dir "$dir" ;;
  worker_kill) "$cluster" stop worker1 --kill --dir "$dir"; sleep 2; "$cluster" start worker1 --dir "$dir" ;;
  nats_node_kill) "$cluster" stop nats2 --kill --dir "$dir"; probe 2; sleep 3; "$cluster" start nats2 --dir "$dir" ;;
  postgres_restart)
    "$cluster" stop postgres --kill --dir "$dir"
    probe 2  # accepted while the database is down (reads answer 503 meanwhile)
    sleep 5
    "$cluster" start postgres --dir "$dir" ;;
  workers_paused)
    probe 2
    sleep 3
    eventually_status received || fail "with every worker stopped"
    "$cluster" start worker1 --dir "$dir"
    "$cluster" start worker2 --dir "$dir" ;;
esac
probe 3
eventually_status received processing graded || fail "status during the fault"
wait "$spike_pid" || { cat "$dir/spike.txt" >&2; fail "spike's audit failed"; }
grep -q "lost 0, duplicated 0, rows without receipt 0" "$dir/spike.txt" || { cat "$dir/spike.txt" >&2; fail "audit"; }
if [[ $scenario == server_kill ]]; then
  grep -Eq "retried [1-9]" "$dir/spike.txt" || { cat "$dir/spike.txt" >&2; fail "no student retried elsewhere"; }
fi
eventually_status graded || fail "status after the drain"
dead=$(psql -At "$db" -c "SELECT count(*) FROM exam_dead_letters")
[[ $dead == 0 ]] || fail "$dead dead letter(s): the fault cost submissions"
rows=$(psql -At "$db" -c "SELECT count(*) FROM submissions")
echo "cluster_fault $scenario: passed ($rows rows; $(grep -m1 'students with a receipt' "$dir/spike.txt" | sed 's/^ *//'))"
