#!/usr/bin/env bash
# The benchmark in one command: builds clinvoker (release), installs the pinned Claude Code CLI
# into tests/node/node_modules if it is missing, then runs bench/bench.py (arguments are passed
# on: --requests N, --mock-delay-ms N, --quick). Talks to 127.0.0.1 only; needs no credentials.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release
if [ ! -x tests/node/node_modules/.bin/claude ]; then
  npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
fi
exec python3 bench/bench.py "$@"
