# Shared by the benchmark scripts (flood.sh, rollout.sh): a scratch directory cleaned
# at exit, servers started and stopped on free loopback ports, and one PostgreSQL 15
# for a run. Sourced; start_postgres expects `pg_bin` and `small_db`.

# scratch NAME: the run's scratch directory `work` and its results directory `out`
# (unless set), and the exit trap that kills what `pids` holds and removes the runs'
# directories (the results stay when they are in `work`).
scratch() {
  work=$(mktemp -d "/tmp/ingest-$1.XXXXXX")
  [[ -n "$out" ]] || out="$work/results"
  mkdir -p "$out"
  pids=()
  trap cleanup EXIT
}
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$work/run-"* "$work/pg" 2>/dev/null || true  # a killed server's backends may still write
  rmdir "$work" 2>/dev/null || true  # empty unless the results are in it
}

# wait_for_log FILE TEXT: waits up to 10 s for TEXT in a log (a broker saying it is up).
wait_for_log() {
  for _ in $(seq 100); do grep -qs "$2" "$1" && return 0; sleep 0.1; done
  echo "${0##*/}: no '$2' in $1 after 10 s" >&2
}

# start NAME LOG ARGS...: starts a server on a free port; sets pid and url.
start() {
  local name=$1 log=$2
  shift 2
  : >"$log"  # there before the first read below (the background redirection may come later)
  "$@" >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do
    url=$(sed -n 's/.* listening on \(http:[^ ]*\).*/\1/p' "$log" | head -1)
    [[ -n "$url" ]] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "${0##*/}: $name did not start:" >&2
  cat "$log" >&2
  exit 1
}

# stop PID NAME LOG: SIGTERM, and the drain must end with exit code 0 (guarantee 8).
stop() {
  local p=$1 name=$2 log=$3 rc=0
  kill -TERM "$p" 2>/dev/null || true  # gone already: its exit code says how
  wait "$p" || rc=$?
  if [[ $rc -ne 0 ]]; then
    echo "${0##*/}: $name exited with $rc after SIGTERM:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
}

free_port() {
  local p
  for _ in $(seq 50); do
    p=$((12000 + RANDOM % 20000))  # below the ephemeral range: no clash with client ports
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "${0##*/}: no free port" >&2
  exit 1
}

# cpu_of PID: user + system seconds of a process so far (0 when it is gone).
cpu_of() {
  awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# PostgreSQL for --sink postgres: one server for the whole run, a database per wall.
pg_port=""
as_pg_user() {
  if [[ $(id -u) -eq 0 ]]; then setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; else "$@"; fi
}
start_postgres() {
  local dir="$work/pg"
  mkdir -p "$dir"
  chmod 755 "$work"
  [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$dir"
  as_pg_user "$pg_bin/initdb" -D "$dir/data" -U ingest --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1
  pg_port=$(free_port)
  local settings=(-c listen_addresses=127.0.0.1 -c max_connections=300)
  local pin=()
  if [[ $small_db -eq 1 ]]; then
    settings=(-c listen_addresses=127.0.0.1 -c max_connections=100 -c shared_buffers=16MB)
    pin=(taskset -c 0)
  fi
  local as_user=()
  [[ $(id -u) -eq 0 ]] && as_user=(setpriv --reuid=postgres --regid=postgres --clear-groups --pdeathsig KILL --)
  "${pin[@]}" "${as_user[@]}" "$pg_bin/postgres" -D "$dir/data" -p "$pg_port" -k "$dir" "${settings[@]}" \
    >"$dir/server.log" 2>&1 &
  pids+=("$!")
  disown "$!"  # killed at exit without a job notice
  for _ in $(seq 200); do
    "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && return 0
    sleep 0.1
  done
  echo "${0##*/}: PostgreSQL did not start:" >&2
  cat "$dir/server.log" >&2
  exit 1
}
# fresh_database NAME: creates an empty database; prints its URL.
fresh_database() {
  local name=${1//[^a-z0-9]/_}
  psql -q -h 127.0.0.1 -p "$pg_port" -U ingest -d postgres -c "CREATE DATABASE $name" >/dev/null
  echo "postgresql://ingest@127.0.0.1:$pg_port/$name"
}
