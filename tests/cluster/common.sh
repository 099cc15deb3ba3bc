# Shared by the scripts that run scripts/cluster.sh in a test (sourced): options, the
# skip when a server is missing, a directory and ports of its own, and the clean-up.
#
# Before sourcing: `name` (for messages) and `students` (the default). Sets `here`,
# `build`, `students`, `cluster`, `dir`, `base`; defines `fail` and `json_field`.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build="$here/build"
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --students) students=$2; shift 2 ;;
    *) echo "$name: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v nats-server >/dev/null || { echo "nats-server is not installed (skipped)" >&2; exit 77; }
[[ -x /usr/lib/postgresql/15/bin/postgres ]] || { echo "PostgreSQL 15 is not installed (skipped)" >&2; exit 77; }

cluster="$here/scripts/cluster.sh"
dir=$(mktemp -d /tmp/ingest-cluster.XXXXXX)
# A base port below the ephemeral range (outgoing connections take ports from 32768 up),
# the 41 ports above it free (cluster.sh refuses listening ones).
base=$((20000 + (RANDOM % 120) * 100))

cluster_cleanup() {
  local f left=()
  for f in "$dir"/*/pid; do [[ -f $f ]] && left+=("$(<"$f")"); done
  "$cluster" down --dir "$dir" >/dev/null 2>&1 || true
  # Whatever `down` did not stop (a test failing on exactly that) goes too.
  for f in "${left[@]}"; do kill -KILL "$f" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cluster_cleanup EXIT

fail() {
  echo "$name: $*" >&2
  local f
  for f in "$dir"/*/log; do echo "== $f" >&2; tail -5 "$f" >&2; done
  exit 1
}

# json_field NAME: the field of the JSON object on standard input ('' if none or not JSON).
json_field() {
  python3 -c "import json,sys
try: print(json.load(sys.stdin).get('$1', ''))
except Exception: print('')"
}
