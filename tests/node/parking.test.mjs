// Parked conversations through the official JavaScript SDKs against clinvoker (real Claude Code
// CLI on the mock upstream): a chat that resends its history with every turn, as SDK apps do,
// continues in the process that holds it (conversation hits in /admin/pools), in both dialects,
// and what reaches the model is the whole chat.  Run:  cd tests/node && node --test
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

import { serverPair, token } from './harness.mjs';

const servers = serverPair(['node-parking-key']);
const { withLogs } = servers;

async function counters() {
  const pools = (await (await fetch(`${servers.open.url}/admin/pools`)).json()).pools;
  const sum = (name) => pools.reduce((n, p) => n + p.counters[name], 0);
  return { hits: sum('conversation_hits'), misses: sum('conversation_misses') };
}

describe('parked conversations through the JavaScript SDKs', () => {
  test('Anthropic: every follow-up of a chat continues its parked conversation', withLogs(async () => {
    const claude = new Anthropic({ baseURL: servers.open.baseURL, apiKey: 'unused', authToken: null, maxRetries: 0, timeout: 60_000 });
    const t = token();
    const before = await counters();
    const messages = [];
    for (let i = 0; i < 5; i++) {
      messages.push({ role: 'user', content: `${t} turn ${i}` });
      const r = await claude.messages.create({ model: 'claude', max_tokens: 100, messages });
      messages.push({ role: 'assistant', content: r.content });
    }
    const after = await counters();
    assert.deepEqual([after.hits - before.hits, after.misses - before.misses], [4, 0]);
    const last = (await servers.mock.requestsWith(`${t} turn 4`)).at(-1);
    const roles = last.messages.filter((m) => m.role !== 'system').map((m) => m.role);
    assert.deepEqual(roles, ['user', 'assistant', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant', 'user']);
  }));

  test('OpenAI: a streamed chat continues its parked conversation', withLogs(async () => {
    const gpt = new OpenAI({ baseURL: `${servers.open.url}/openai/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
    const t = token();
    const before = await counters();
    const messages = [{ role: 'system', content: 'Be brief.' }];
    for (let i = 0; i < 3; i++) {
      messages.push({ role: 'user', content: `${t} turn ${i}` });
      let text = '';
      const stream = await gpt.chat.completions.create({ model: 'claude', messages, stream: true });
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      assert.equal(text, `MOCK_OK: ${t} turn ${i}`);
      messages.push({ role: 'assistant', content: text });
    }
    const after = await counters();
    assert.deepEqual([after.hits - before.hits, after.misses - before.misses], [2, 0]);
  }));
});
