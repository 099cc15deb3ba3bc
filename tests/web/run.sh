#!/usr/bin/env bash
# Runs one of the web tests with Node's test runner:
#   run.sh EXAM_SERVER EXAM_WORKER TEST.mjs
# Exit code 77 (CTest's skip) when Node, the npm packages (scripts/setup.sh installs
# them) or, for the page tests, Debian's Chromium are missing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
server=$1
worker=$2
test=$3
if ! command -v node >/dev/null; then
  echo "skip: node is not installed" >&2
  exit 77
fi
if [[ $test == pages* || $test == teacher* || $test == attachments* ]]; then
  if [[ ! -d $here/node_modules/playwright-core ]]; then
    echo "skip: tests/web/node_modules missing (scripts/setup.sh --deps installs it)" >&2
    exit 77
  fi
  if [[ ! -x ${CHROMIUM:-/usr/bin/chromium} ]]; then
    echo "skip: no Chromium at ${CHROMIUM:-/usr/bin/chromium} (apt-get install chromium)" >&2
    exit 77
  fi
fi
if [[ $test == attachments* && ! -d $here/../sqs/node_modules/fauxqs ]]; then
  echo "skip: tests/sqs/node_modules missing (scripts/setup.sh --deps installs the fauxqs emulator)" >&2
  exit 77
fi
cd "$here"
EXAM_SERVER=$server EXAM_WORKER=$worker exec node --test --test-reporter=spec "$here/$test"
