#!/usr/bin/env bash
# The one test command: installs everything the tests need, then runs them all.
#   - the real Claude Code, Codex and Gemini CLIs (pinned) and the npm SDKs, into
#     tests/node/node_modules
#   - the Python SDKs, into .venv
#   - Rust unit and integration tests (fake CLI and real CLI on a local mock upstream)
#   - the chaos suite (tests/chaos/run.py): one line of figures per scenario
#   - the official Python and Node SDKs against a running server
#   - Debian's chromium, for the dashboard test, and nginx (with its njs module), for the tests
#     behind a reverse proxy and the cluster test (installed when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n== %s\n' "$*"; }
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step "npm: the Claude Code, Codex and Gemini CLIs and the Anthropic/OpenAI SDKs (tests/node)"
npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
claude="tests/node/node_modules/.bin/claude"
if ! "$claude" --version >/dev/null 2>&1; then
  # Some npm versions skip the package's postinstall, which links the native binary.
  (cd tests/node/node_modules/@anthropic-ai/claude-code && node install.cjs)
fi
"$claude" --version
tests/node/node_modules/.bin/codex --version
tests/node/node_modules/.bin/gemini --version

step "Python: the Anthropic/OpenAI SDKs (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt

step "Chromium (Debian package) for the dashboard test"
if ! command -v chromium >/dev/null 2>&1; then
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq chromium >/dev/null
fi
chromium --version

step "nginx (Debian package, with njs) for the reverse-proxy and cluster tests"
if ! dpkg -s nginx libnginx-mod-http-js >/dev/null 2>&1; then
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq nginx libnginx-mod-http-js >/dev/null
fi
# Debian puts nginx in /usr/sbin, which is not on every user's PATH.
"$(command -v nginx || echo /usr/sbin/nginx)" -v

step "Rust: build, unit and integration tests"
cargo build --all-targets
cargo test

step "Chaos suite: kill -9, disconnects, overload, fairness, hangs, fuzzing, soak, shutdown"
.venv/bin/python tests/chaos/run.py

step "Python SDK tests"
.venv/bin/python -m pytest -q tests/sdk

step "Node SDK tests"
(cd tests/node && node --test)
