// Structured outputs through the official TypeScript SDKs' parse helpers with zod models, on
// the real Claude Code CLI (which binds the schema to its process) against the mock upstream,
// whose answer to a schema is the smallest object satisfying it.
// Run:  cd tests/node && node --test
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import { zodOutputFormat } from '@anthropic-ai/sdk/helpers/zod';
import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';

import { serverPair, token } from './harness.mjs';

const servers = serverPair(['node-structured-key']);
const { withLogs } = servers;

const Person = z.object({ name: z.string(), age: z.number().int() });

describe('structured outputs with zod', () => {
  test('anthropic messages.parse fills parsed_output', withLogs(async () => {
    const client = new Anthropic({ baseURL: servers.open.baseURL, apiKey: 'unused', authToken: null, maxRetries: 0 });
    const r = await client.messages.parse({
      model: 'claude',
      max_tokens: 200,
      output_config: { format: zodOutputFormat(Person) },
      messages: [{ role: 'user', content: `a person ${token()}` }],
    });
    assert.deepEqual(r.parsed_output, { name: 'x', age: 1 });
    assert.equal(r.stop_reason, 'end_turn');
  }));

  test('openai chat.completions.parse fills parsed', withLogs(async () => {
    const base = servers.open.baseURL.replace(/\/anthropic\/v1$/, '/openai/v1');
    const client = new OpenAI({ baseURL: base, apiKey: 'unused', maxRetries: 0 });
    const r = await client.chat.completions.parse({
      model: 'claude',
      response_format: zodResponseFormat(Person, 'person'),
      messages: [{ role: 'user', content: `a person ${token()}` }],
    });
    assert.deepEqual(r.choices[0].message.parsed, { name: 'x', age: 1 });
    assert.equal(r.choices[0].finish_reason, 'stop');
  }));
});
