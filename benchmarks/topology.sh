#!/usr/bin/env bash
# The whole multi-machine topology of scripts/cluster.sh on this machine (three NATS
# nodes with an R3 stream, PostgreSQL, three exam_servers, two exam_workers) under the
# deadline wall and the open loop, each spread over the three servers and audited in
# PostgreSQL; the CPU each kind of process spent per accepted submission, from /proc.
#
#   benchmarks/topology.sh [--students 10000] [--window 1] [--open-rate 2000]
#                          [--open-seconds 10] [--build build] [--out DIR]
#
# Every process shares this machine's cores: the figures say what the topology costs
# here, not what separate machines would do.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build="$here/build" students=10000 window=1 open_rate=2000 open_seconds=10 out=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --students) students=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --open-rate) open_rate=$2; shift 2 ;;
    --open-seconds) open_seconds=$2; shift 2 ;;
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "topology.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
dir=$(mktemp -d /tmp/ingest-topology.XXXXXX)
chmod 755 "$dir"  # PostgreSQL runs as its own user under it when this runs as root
[[ -n $out ]] || out="$dir/results"
mkdir -p "$out"
base=$((20000 + (RANDOM % 120) * 100))
cluster="$here/scripts/cluster.sh"
trap '"$cluster" down --dir "$dir/cluster" >/dev/null 2>&1 || true' EXIT

ticks=$(getconf CLK_TCK)
# cpu_of PID: user + system seconds of a process so far (0 when it is gone).
cpu_of() {
  awk -v t="$ticks" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}
# PostgreSQL: the postmaster with its reaped children (fields 16, 17: backends whose
# connections closed) plus the children alive now.
pg_cpu() {
  local pm total p
  pm=$(head -1 "$dir/cluster/postgres/data/postmaster.pid")
  total=$(awk -v t="$ticks" '{ printf "%.2f", ($14 + $15 + $16 + $17) / t }' "/proc/$pm/stat")
  for p in $(pgrep -P "$pm"); do
    total=$(awk -v a="$total" -v b="$(cpu_of "$p")" 'BEGIN { printf "%.2f", a + b }')
  done
  echo "$total"
}
sample() {  # sample FILE: the CPU seconds of each kind of process, one line each
  local kind n sum
  {
    for kind in nats server worker; do
      sum=0
      for n in 1 2 3; do
        [[ -f $dir/cluster/$kind$n/pid ]] || continue
        sum=$(awk -v a="$sum" -v b="$(cpu_of "$(<"$dir/cluster/$kind$n/pid")")" 'BEGIN { printf "%.2f", a + b }')
      done
      echo "$kind $sum"
    done
    echo "postgres $(pg_cpu)"
  } >"$1"
}

"$cluster" up --dir "$dir/cluster" --build "$build" --base "$base" >"$dir/up.txt"
export INGEST_JWT_SECRET
INGEST_JWT_SECRET=$(<"$dir/cluster/secret")
urls="http://127.0.0.1:$((base + 1)),http://127.0.0.1:$((base + 2)),http://127.0.0.1:$((base + 3))"
db="postgresql://exam@127.0.0.1:$((base + 40))/exams"

run() {  # run LABEL SPIKE-ARGS...
  local label=$1
  shift
  sample "$out/$label.before"
  "$build/examples/spike" --url "$urls" --db "$db" --label "$label" --json "$out/$label.json" \
    --drain-timeout 600 "$@" | tee "$out/$label.txt"
  sample "$out/$label.after"
  local accepted
  accepted=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['receipts'])" "$out/$label.json")
  echo "CPU per accepted submission ($label, $accepted receipts), flood and drain:"
  paste "$out/$label.before" "$out/$label.after" | awk -v n="$accepted" \
    '{ printf "  %-9s %7.2f s  %6.0f µs\n", $1, $4 - $2, ($4 - $2) * 1e6 / n }'
}
run wall --students "$students" --window "$window"
run open-loop --rate "$open_rate" --duration "$open_seconds" --connections 1000
echo "results: $out"
