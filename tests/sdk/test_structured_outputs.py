"""Structured outputs through the official SDKs' `parse` helpers (Pydantic models) and the real
CLIs on the mocks: Claude Code (the schema bound to the process, validated by the CLI, retried)
and Codex (the schema per turn, validated by the server). (Gemini's clear 400 is tested on its
fake, in tests/it/structured.rs.)"""
import json

import anthropic
import openai
import pytest
from pydantic import BaseModel

from conftest import token
from test_codex_sdk import codex  # noqa: F401  (the Codex server fixture)


class Person(BaseModel):
    name: str
    age: int


def test_anthropic_parse_through_claude(sdk_env):
    client = anthropic.Anthropic(base_url=sdk_env.base_url, api_key="unused")
    t = token()
    message = client.messages.parse(
        model="claude", max_tokens=200, output_format=Person,
        messages=[{"role": "user", "content": "give me a person %s" % t}])
    assert message.parsed_output == Person(name="x", age=1)
    assert message.stop_reason == "end_turn"
    # The CLI offered the model its StructuredOutput tool with the schema.
    [upstream] = sdk_env.mock.requests_with(t)
    tool = [x for x in upstream["tools"] if x["name"] == "StructuredOutput"][0]
    assert tool["input_schema"]["required"] == ["name", "age"]

    with client.messages.stream(model="claude", max_tokens=200, output_format=Person,
                                messages=[{"role": "user", "content": "stream a person"}]) as stream:
        final = stream.get_final_message()
    assert json.loads(final.content[0].text) == {"name": "x", "age": 1}


def test_claude_retries_refusals_and_exhaustion(sdk_env):
    client = anthropic.Anthropic(base_url=sdk_env.base_url, api_key="unused", max_retries=0)
    fixed = client.messages.parse(
        model="claude", max_tokens=200, output_format=Person,
        messages=[{"role": "user", "content": "SO_BAD_ONCE " + token()}])
    assert fixed.parsed_output == Person(name="x", age=1), "the invalid first attempt is never shown"
    refused = client.messages.create(
        model="claude", max_tokens=200,
        output_config={"format": {"type": "json_schema", "schema": Person.model_json_schema()}},
        messages=[{"role": "user", "content": "SO_TEXT " + token()}])
    assert refused.stop_reason == "refusal"
    with pytest.raises(anthropic.APIStatusError) as exhausted:
        client.messages.create(
            model="claude", max_tokens=200,
            output_config={"format": {"type": "json_schema", "schema": Person.model_json_schema()}},
            messages=[{"role": "user", "content": "SO_BAD " + token()}])
    assert exhausted.value.status_code == 502
    assert "schema" in str(exhausted.value)


def test_a_schema_process_never_serves_a_plain_request(sdk_env):
    client = anthropic.Anthropic(base_url=sdk_env.base_url, api_key="unused")
    client.messages.parse(model="claude", max_tokens=100, output_format=Person,
                          messages=[{"role": "user", "content": "a person " + token()}])
    t = token()
    plain = client.messages.create(model="claude", max_tokens=100,
                                   messages=[{"role": "user", "content": "plain " + t}])
    assert plain.content[0].text == "MOCK_OK: plain " + t
    [upstream] = sdk_env.mock.requests_with("plain " + t)
    assert not any(x.get("name") == "StructuredOutput" for x in upstream.get("tools", []))


def test_openai_parse_through_claude_and_json_object(sdk_env):
    client = openai.OpenAI(base_url="http://127.0.0.1:%d/openai/v1" % sdk_env.port, api_key="unused")
    done = client.chat.completions.parse(
        model="claude", response_format=Person,
        messages=[{"role": "user", "content": "a person " + token()}])
    assert done.choices[0].message.parsed == Person(name="x", age=1)
    assert done.choices[0].finish_reason == "stop"
    obj = client.chat.completions.create(
        model="claude", response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "any object " + token()}])
    assert isinstance(json.loads(obj.choices[0].message.content), dict)
    refusal = client.chat.completions.parse(
        model="claude", response_format=Person,
        messages=[{"role": "user", "content": "SO_TEXT " + token()}])
    assert refusal.choices[0].message.parsed is None
    assert refusal.choices[0].message.refusal


def test_openai_parse_through_codex(codex):  # noqa: F811
    server, upstream = codex
    client = openai.OpenAI(base_url=server.url + "/openai/v1", api_key="unused")
    t = token()
    done = client.chat.completions.parse(
        model="gpt-5", response_format=Person,
        messages=[{"role": "user", "content": "a person " + t}])
    assert done.choices[0].message.parsed == Person(name="x", age=1)
    bodies = [r["body"] for r in upstream.log() if t in json.dumps(r.get("body"))]
    assert bodies[0]["text"]["format"]["type"] == "json_schema"
    with client.chat.completions.stream(
            model="gpt-5", response_format=Person,
            messages=[{"role": "user", "content": "stream a person " + token()}]) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == Person(name="x", age=1)


def test_bad_schemas_are_refused_before_any_process(sdk_env):
    client = anthropic.Anthropic(base_url=sdk_env.base_url, api_key="unused", max_retries=0)
    for schema in [{"type": "array", "items": {}}, {"type": "object", "properties": {"a": {"type": "nonsense"}}}]:
        with pytest.raises(anthropic.BadRequestError) as bad:
            client.messages.create(model="claude", max_tokens=10,
                                   output_config={"format": {"type": "json_schema", "schema": schema}},
                                   messages=[{"role": "user", "content": "x"}])
        assert "schema" in str(bad.value)
