// Starts the mock Anthropic upstream (tests/support/mock_anthropic.py) and clinvoker servers whose
// pools run the real Claude Code CLI (pinned in package.json) against it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..');
const BINARY = path.join(REPO, 'target', 'debug', 'clinvoker');
const CLAUDE = path.join(HERE, 'node_modules', '.bin', 'claude');
const MOCK = path.join(REPO, 'tests', 'support', 'mock_anthropic.py');
export const STOP_TIMEOUT_MS = 30_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A marker unique to one test, to find its requests in the mock's log. */
export function token() {
  return 'tok' + Math.random().toString(16).slice(2, 14).padEnd(12, '0');
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** This process's environment minus anything that could steer the server, CLI or SDK away from the test setup. */
function cleanEnv() {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(CLINVOKER|ANTHROPIC_|CLAUDE_CODE_|OPENAI_)/.test(k) || k === 'CLAUDE_CONFIG_DIR') delete env[k];
  }
  return env;
}

export async function startMock(workdir) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const python = process.env.PYTHON || 'python3';
  // --exit-on-stdin-eof: the mock ends with this process even if cleanup never runs.
  const logFd = openSync(path.join(workdir, 'mock.log'), 'w');
  const proc = spawn(python, [MOCK, String(port), '--exit-on-stdin-eof'], {
    stdio: ['pipe', 'ignore', logFd],
    env: cleanEnv(),
  });
  closeSync(logFd);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const r = await fetch(`${url}/__log`);
      if (r.ok) break;
    } catch {}
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error('the mock upstream did not start');
    await sleep(50);
  }
  return {
    port,
    url,
    async log() {
      const r = await fetch(`${url}/__log`);
      return r.json();
    },
    /** Bodies of the upstream /v1/messages requests whose JSON contains `marker`. */
    async requestsWith(marker) {
      return (await this.log())
        .filter((r) => r.method === 'POST' && r.path.startsWith('/v1/messages') && !r.path.includes('count_tokens'))
        .map((r) => r.body)
        .filter((b) => b && JSON.stringify(b).includes(marker));
    },
    stop() {
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
  };
}

export async function startServer(workdir, mock, name, extraEnv = {}) {
  if (!existsSync(BINARY)) throw new Error('target/debug/clinvoker is missing: run `cargo build` in the repository root');
  if (!existsSync(CLAUDE)) throw new Error('the Claude Code CLI is missing: run `npm ci` in tests/node');
  const dir = mkdtempSync(path.join(workdir, `${name}-`));
  const stderrPath = path.join(dir, 'stderr.log');
  const stderrFd = openSync(stderrPath, 'w');
  const env = {
    ...cleanEnv(),
    // The CLI children inherit the server's environment.
    ANTHROPIC_BASE_URL: mock.url,
    ANTHROPIC_API_KEY: 'sk-test',
    CLINVOKER__BACKENDS__CLAUDE__COMMAND: CLAUDE,
    CLINVOKER__SERVER__STATE_DIR: path.join(dir, 'state'),
    CLINVOKER__POOL__MAX_PROCESSES: '4',
    CLINVOKER__POOL__MAX_TOTAL_PROCESSES: '8',
    ...extraEnv,
  };
  const proc = spawn(BINARY, ['serve', '--port', '0'], { stdio: ['ignore', 'pipe', stderrFd], env });
  closeSync(stderrFd);
  const stderrTail = (n = 40) => {
    try {
      return readFileSync(stderrPath, 'utf8').split('\n').slice(-n).join('\n');
    } catch {
      return '(no stderr)';
    }
  };
  const exited = once(proc, 'exit');
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`clinvoker did not print its listening line:\n${stderrTail()}`));
    }, 30_000);
    proc.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/^clinvoker listening on http:\/\/127\.0\.0\.1:(\d+)\n/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    exited.then(
      ([code]) => {
        clearTimeout(timer);
        reject(new Error(`clinvoker exited at startup (${code}):\n${stderrTail()}`));
      },
      (err) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
  proc.stdout.resume();
  return {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    // What the guide's clients use as baseURL.
    baseURL: `http://localhost:${port}/anthropic/v1`,
    stderrTail,
    /** SIGTERM, then wait for the exit; returns an error text, or null if it stopped cleanly in time. */
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return `${name} server had already exited:\n${stderrTail()}`;
      proc.kill('SIGTERM');
      let timer;
      const timeout = new Promise((r) => (timer = setTimeout(() => r(null), STOP_TIMEOUT_MS)));
      const result = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (result === null) {
        proc.kill('SIGKILL');
        return `${name} server did not exit within ${STOP_TIMEOUT_MS / 1000}s of SIGTERM:\n${stderrTail()}`;
      }
      const [code, signal] = result;
      return code === 0 ? null : `${name} server exited with ${code ?? signal} after SIGTERM:\n${stderrTail()}`;
    },
  };
}

export function tempDir() {
  return mkdtempSync(path.join(os.tmpdir(), 'clinvoker-node-'));
}

/**
 * For one test file: the mock upstream, an open server and one that requires `keys`, started
 * before the file's tests; after them both servers get SIGTERM together and each must exit
 * cleanly within STOP_TIMEOUT_MS. `withLogs(fn)` wraps a test body so that a failure prints both
 * servers' stderr tails.
 */
export function serverPair(keys) {
  const pair = { mock: null, open: null, keyed: null };
  const servers = () => [pair.open, pair.keyed].filter(Boolean);
  before(async () => {
    const dir = tempDir();
    pair.mock = await startMock(dir);
    [pair.open, pair.keyed] = await Promise.all([
      startServer(dir, pair.mock, 'open'),
      startServer(dir, pair.mock, 'keyed', { CLINVOKER_API_KEYS: keys.join(',') }),
    ]);
  });
  after(async () => {
    const errors = (await Promise.all(servers().map((s) => s.stop()))).filter(Boolean);
    pair.mock?.stop();
    assert.deepEqual(errors, []);
  });
  pair.withLogs = (fn) => async (t) => {
    try {
      await fn(t);
    } catch (e) {
      for (const s of servers()) {
        console.error(`--- clinvoker ${s.name} server stderr (tail) ---\n${s.stderrTail()}`);
      }
      throw e;
    }
  };
  return pair;
}
