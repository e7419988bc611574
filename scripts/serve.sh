#!/usr/bin/env bash
# The one command that runs the server: builds clinvoker (release) and starts it on
# 127.0.0.1:8080 (extra arguments go to `clinvoker serve`, e.g. --port 9000 --config my.toml).
# Uses the `claude` on PATH; without one, installs the pinned Claude Code CLI from npm into
# tests/node/node_modules and uses that. The CLI needs credentials as usual: a Claude Code login,
# or ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for a gateway) in this environment.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if [ -z "${CLINVOKER__BACKENDS__CLAUDE__COMMAND:-}" ] && ! command -v claude >/dev/null 2>&1; then
  npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
  export CLINVOKER__BACKENDS__CLAUDE__COMMAND="$PWD/tests/node/node_modules/.bin/claude"
fi
cargo build --release --bin clinvoker
exec ./target/release/clinvoker serve "$@"
