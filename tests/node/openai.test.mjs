// The official OpenAI JavaScript SDK (openai, pinned in package.json) against clinvoker's OpenAI
// dialect, base URL /openai/v1. The mock upstream answers `MOCK_OK: <first 60 chars of the last
// user text>`.  Run:  cd tests/node && node --test
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import OpenAI from 'openai';

import { serverPair, token } from './harness.mjs';

const KEYS = ['node-openai-key'];
const servers = serverPair(KEYS);
const { withLogs } = servers;

/** A client of `server` that records the path of every request it sends in `paths`. */
function client(server = servers.open, opts = {}, paths = []) {
  return new OpenAI({
    baseURL: `${server.url}/openai/v1`,
    apiKey: 'unused',
    maxRetries: 0,
    timeout: 60_000,
    fetch: (url, init) => {
      paths.push(new URL(url).pathname);
      return fetch(url, init);
    },
    ...opts,
  });
}

const ask = (c, content, extra = {}) =>
  c.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content }], ...extra });

describe('openai (npm) against clinvoker', () => {
  test('chat.completions.create returns the upstream answer', withLogs(async () => {
    const t = token();
    const paths = [];
    const r = await ask(client(servers.open, {}, paths), `Hello from node ${t}`);
    assert.deepEqual(paths, ['/openai/v1/chat/completions']);
    assert.equal(r.object, 'chat.completion');
    assert.ok(r.id.startsWith('chatcmpl-'));
    assert.equal(r.model, 'claude');
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, `MOCK_OK: Hello from node ${t}`);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.deepEqual([r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens], [11, 7, 18]);
    const upstream = await servers.mock.requestsWith(t);
    assert.equal(upstream.length, 1);
    assert.equal(upstream[0].model, 'claude-sonnet-5-5');
  }));

  test('a stream yields the role, several deltas, the finish reason and usage', withLogs(async () => {
    const t = token();
    const prompt = `Stream a poem about the sea ${t}`;
    const stream = await ask(client(), prompt, { stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const deltas = chunks.filter((c) => c.choices[0]?.delta?.content).map((c) => c.choices[0].delta.content);
    assert.ok(deltas.length >= 3, `the text should arrive incrementally, got ${JSON.stringify(deltas)}`);
    assert.equal(deltas.join(''), `MOCK_OK: ${prompt}`);
    const finishes = chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean);
    assert.deepEqual(finishes, ['stop']);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.completion_tokens, 7);
  }));

  test('16 concurrent creates each get their own answer', withLogs(async () => {
    const t = token();
    const prompts = Array.from({ length: 16 }, (_, i) => `Concurrent ${String(i).padStart(2, '0')} ${t}`);
    const c = client();
    const replies = await Promise.all(prompts.map((p) => ask(c, p)));
    assert.deepEqual(
      replies.map((r) => r.choices[0].message.content),
      prompts.map((p) => `MOCK_OK: ${p}`),
    );
    const upstream = await servers.mock.requestsWith(t);
    assert.equal(upstream.length, 16);
    for (const body of upstream) {
      const json = JSON.stringify(body);
      assert.equal(prompts.filter((p) => json.includes(p)).length, 1, 'one prompt per upstream request');
    }
  }));

  test('models.list names the configured models', withLogs(async () => {
    const paths = [];
    const ids = [];
    for await (const m of client(servers.open, {}, paths).models.list()) ids.push(m.id);
    assert.deepEqual(paths, ['/openai/v1/models']);
    assert.ok(ids.includes('claude') && ids.includes('sonnet'), ids.join(','));
  }));

  test('n=2 is a BadRequestError naming the param', withLogs(async () => {
    await assert.rejects(ask(client(), 'two please', { n: 2 }), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name}: ${err}`);
      assert.equal(err.param, 'n');
      return true;
    });
  }));

  test('a wrong key on a keyed server is an AuthenticationError', withLogs(async () => {
    const t = token();
    await assert.rejects(ask(client(servers.keyed, { apiKey: 'wrong-key' }), `Locked ${t}`), (err) => {
      assert.ok(err instanceof OpenAI.AuthenticationError, `got ${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 401);
      assert.equal(err.code, 'invalid_api_key');
      return true;
    });
    assert.equal((await servers.mock.requestsWith(t)).length, 0, 'a refused request must not reach the upstream');
    const r = await ask(client(servers.keyed, { apiKey: KEYS[0] }), `Unlocked ${t}`);
    assert.equal(r.choices[0].message.content, `MOCK_OK: Unlocked ${t}`);
  }));
});
