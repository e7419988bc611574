// The official TypeScript/JavaScript SDK (@anthropic-ai/sdk, pinned in package.json) against
// clinvoker. The mock upstream answers `MOCK_OK: <first 60 chars of the last user text>`.
// Run:  cd tests/node && node --test
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';

import { serverPair, token } from './harness.mjs';

const KEYS = ['node-key-one', 'node-key-two'];
const servers = serverPair(KEYS);
const { withLogs } = servers;

const client = (opts = {}) =>
  new Anthropic({ baseURL: servers.open.baseURL, apiKey: 'unused', authToken: null, maxRetries: 0, timeout: 60_000, ...opts });

describe('@anthropic-ai/sdk against clinvoker', () => {
  test('messages.create returns the upstream answer', withLogs(async () => {
    const t = token();
    const r = await client().messages.create({
      model: 'claude',
      max_tokens: 100,
      messages: [{ role: 'user', content: `Hello from node ${t}` }],
    });
    assert.equal(r.type, 'message');
    assert.equal(r.role, 'assistant');
    assert.equal(r.content.length, 1);
    assert.equal(r.content[0].type, 'text');
    assert.equal(r.content[0].text, `MOCK_OK: Hello from node ${t}`);
    assert.equal(r.model, 'claude');
    assert.equal(r.stop_reason, 'end_turn');
    assert.equal(r.usage.input_tokens, 11);
    assert.equal(r.usage.output_tokens, 7);
    const upstream = await servers.mock.requestsWith(t);
    assert.equal(upstream.length, 1);
    assert.equal(upstream[0].model, 'claude-sonnet-5-5');
  }));

  test('messages.stream emits several text deltas and a final message', withLogs(async () => {
    const t = token();
    const prompt = `Stream a poem about the sea ${t}`;
    const deltas = [];
    const stream = client().messages.stream({
      model: 'claude',
      max_tokens: 100,
      messages: [{ role: 'user', content: prompt }],
    });
    stream.on('text', (delta) => deltas.push(delta));
    const final = await stream.finalMessage();
    assert.ok(deltas.length >= 3, `the text should arrive incrementally, got ${JSON.stringify(deltas)}`);
    assert.equal(deltas.join(''), `MOCK_OK: ${prompt}`);
    assert.equal(final.content[0].text, `MOCK_OK: ${prompt}`);
    assert.equal(final.stop_reason, 'end_turn');
    assert.equal(final.usage.input_tokens, 11);
    assert.equal(final.usage.output_tokens, 7);
    assert.equal((await servers.mock.requestsWith(t)).length, 1);
  }));

  test('16 concurrent creates each get their own answer', withLogs(async () => {
    const t = token();
    const prompts = Array.from({ length: 16 }, (_, i) => `Concurrent ${String(i).padStart(2, '0')} ${t}`);
    const c = client();
    const replies = await Promise.all(
      prompts.map((p) =>
        c.messages.create({ model: 'claude', max_tokens: 100, messages: [{ role: 'user', content: p }] }),
      ),
    );
    assert.deepEqual(
      replies.map((r) => r.content[0].text),
      prompts.map((p) => `MOCK_OK: ${p}`),
    );
    const upstream = await servers.mock.requestsWith(t);
    assert.equal(upstream.length, 16);
    for (const body of upstream) {
      const json = JSON.stringify(body);
      assert.equal(prompts.filter((p) => json.includes(p)).length, 1, 'one prompt per upstream request');
    }
  }));

  test('a wrong key on a keyed server is an AuthenticationError', withLogs(async () => {
    const t = token();
    const bad = new Anthropic({ baseURL: servers.keyed.baseURL, apiKey: 'wrong-key', authToken: null, maxRetries: 0, timeout: 60_000 });
    await assert.rejects(
      bad.messages.create({ model: 'claude', max_tokens: 100, messages: [{ role: 'user', content: `Locked ${t}` }] }),
      (err) => {
        assert.ok(err instanceof Anthropic.AuthenticationError, `got ${err?.constructor?.name}: ${err}`);
        assert.equal(err.status, 401);
        assert.equal(err.error?.type, 'error');
        assert.equal(err.error?.error?.type, 'authentication_error');
        assert.ok(err.requestID, 'the request-id header is exposed as requestID');
        return true;
      },
    );
    assert.equal((await servers.mock.requestsWith(t)).length, 0, 'a refused request must not reach the upstream');

    // The right key (sent as x-api-key) is let through.
    const good = new Anthropic({ baseURL: servers.keyed.baseURL, apiKey: KEYS[1], authToken: null, maxRetries: 0, timeout: 60_000 });
    const r = await good.messages.create({
      model: 'claude',
      max_tokens: 100,
      messages: [{ role: 'user', content: `Unlocked ${t}` }],
    });
    assert.equal(r.content[0].text, `MOCK_OK: Unlocked ${t}`);
  }));
});
