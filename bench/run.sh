#!/usr/bin/env bash
# The benchmark in one command: builds clinvoker (release), installs the pinned Claude Code, Codex
# and Gemini CLIs into tests/node/node_modules if one is missing, then runs bench/bench.py
# (arguments are passed on: --backends claude,codex,gemini, --requests N, --mock-delay-ms N,
# --quick; see --help). Talks to 127.0.0.1 only; needs no credentials.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release
for cli in claude codex gemini; do
  if [ ! -x "tests/node/node_modules/.bin/$cli" ]; then
    npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
    break
  fi
done
exec python3 bench/bench.py "$@"
