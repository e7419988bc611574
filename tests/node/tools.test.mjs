// Client tool use through the official JavaScript SDKs against clinvoker (real Claude Code CLI on
// the mock upstream, which answers `TOOL:<name>:<json>` with a tool_use block): one round trip
// per dialect — the tool call, then the follow-up carrying its result.  Run:  cd tests/node && node --test
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

import { serverPair, token } from './harness.mjs';

const servers = serverPair(['node-tools-key']);
const { withLogs } = servers;

const WEATHER = {
  name: 'get_weather',
  description: 'Get the current weather for a city.',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

describe('client tools through the JavaScript SDKs', () => {
  test('Anthropic: streamed tool_use, then the tool_result follow-up', withLogs(async () => {
    const claude = new Anthropic({ baseURL: servers.open.baseURL, apiKey: 'unused', authToken: null, maxRetries: 0, timeout: 60_000 });
    const t = token();
    const question = { role: 'user', content: `Weather ${t} TOOL:get_weather:{"city":"Paris"}` };
    const first = await claude.messages
      .stream({ model: 'claude', max_tokens: 100, tools: [WEATHER], messages: [question] })
      .finalMessage();
    assert.equal(first.stop_reason, 'tool_use');
    const use = first.content.find((b) => b.type === 'tool_use');
    assert.deepEqual([use.name, use.input], ['get_weather', { city: 'Paris' }]);
    const upstream = await servers.mock.requestsWith(t);
    assert.deepEqual(upstream[0].tools.map((x) => x.name), ['get_weather']);
    const final = await claude.messages.create({
      model: 'claude', max_tokens: 100, tools: [WEATHER],
      messages: [question, { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] }],
    });
    assert.equal(final.stop_reason, 'end_turn');
    assert.equal(final.content[0].text, 'MOCK_OK: TOOL_RESULT: sunny');
  }));

  test('OpenAI: tool_calls, then the role "tool" follow-up', withLogs(async () => {
    const gpt = new OpenAI({ baseURL: `${servers.open.url}/openai/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
    const tools = [{ type: 'function', function: { name: WEATHER.name, description: WEATHER.description, parameters: WEATHER.input_schema } }];
    const question = { role: 'user', content: `Weather ${token()} TOOL:get_weather:{"city":"Rome"}` };
    const first = await gpt.chat.completions.create({ model: 'claude', tools, messages: [question] });
    const choice = first.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    const [call] = choice.message.tool_calls;
    assert.deepEqual([call.function.name, JSON.parse(call.function.arguments)], ['get_weather', { city: 'Rome' }]);
    const final = await gpt.chat.completions.create({
      model: 'claude', tools,
      messages: [question, choice.message, { role: 'tool', tool_call_id: call.id, content: 'rain' }],
    });
    assert.equal(final.choices[0].message.content, 'MOCK_OK: TOOL_RESULT: rain');
  }));
});
