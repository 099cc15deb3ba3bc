# The brokers and the database of tests/fault/fault.sh (sourced): PostgreSQL, one
# nats-server or a cluster of three, and which node leads a stream. Uses fault.sh's
# `work`, `pg_bin`, `spawn` and `wait_for`.

# PostgreSQL (scenarios *postgres*): initdb in the work directory, run as the `postgres`
# user when this runs as root (initdb and postgres refuse root).
pg_port=""
as_pg_user() {
  if [[ $(id -u) -eq 0 ]]; then setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; else "$@"; fi
}
start_postgres() {
  if [[ ! -d $work/pg/data ]]; then
    mkdir -p "$work/pg"
    chmod 755 "$work"
    [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$work/pg"
    as_pg_user "$pg_bin/initdb" -D "$work/pg/data" -U ingest --auth=trust -E UTF8 --locale=C >"$work/pg/initdb.log" 2>&1
  fi
  as_pg_user "$pg_bin/pg_ctl" -D "$work/pg/data" -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1" \
    -l "$work/pg/server.log" -w start >/dev/null
}
stop_postgres() {  # stop_postgres MODE
  as_pg_user "$pg_bin/pg_ctl" -D "$work/pg/data" -m "$1" -w stop >/dev/null 2>&1 || true
}

nats_ports=() nats_cluster_ports=() nats_monitor_ports=()
start_nats() {  # start_nats INDEX [cluster]
  local i=$1
  local args=(-js -a 127.0.0.1 -p "${nats_ports[$i]}" -sd "$work/nats$i" -n "n$i")
  if [[ ${2:-} == cluster ]]; then
    local routes=()
    for j in 0 1 2; do [[ $j != "$i" ]] && routes+=("nats://127.0.0.1:${nats_cluster_ports[$j]}"); done
    args+=(--cluster_name faults --cluster "nats://127.0.0.1:${nats_cluster_ports[$i]}" \
      --routes "$(IFS=,; echo "${routes[*]}")" -m "${nats_monitor_ports[$i]}")
  fi
  spawn "nats$i" "$work/nats$i.log" nats-server "${args[@]}"
  wait_for "$work/nats$i.log" "Server is ready"
}

# cluster_ready: every node is in contact with a JetStream meta leader that knows all
# three (before that, creating an R3 stream fails with "no suitable peers for placement").
cluster_ready() {
  local i ok
  for _ in $(seq 300); do
    ok=0
    for i in 0 1 2; do
      [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${nats_monitor_ports[$i]}/healthz") == 200 ]] &&
        ok=$((ok + 1))
    done
    ((ok == 3)) && return 0
    sleep 0.1
  done
  echo "fault.sh: the nats cluster did not become healthy within 30 s" >&2
  tail -5 "$work"/nats*.log >&2
  exit 1
}

# stream_leader NAME: the node (n0, n1 or n2) leading stream NAME, asked of node 0's
# monitoring port; waits up to 10 s for the stream to have a leader.
stream_leader() {
  local leader=""
  for _ in $(seq 100); do
    leader=$(curl -s "http://127.0.0.1:${nats_monitor_ports[0]}/jsz?accounts=true&streams=true" | python3 -c '
import json, sys
try:
    data = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
for a in data.get("account_details", []):
    for st in a.get("stream_detail", []):
        if st.get("name") == sys.argv[1]: print(st.get("cluster", {}).get("leader", ""))' "$1" || true)
    [[ $leader =~ ^n[012]$ ]] && { echo "$leader"; return 0; }
    sleep 0.1
  done
  echo "fault.sh: no leader found for stream $1 ('$leader')" >&2
  exit 1
}
