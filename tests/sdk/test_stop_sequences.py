"""Stop sequences through the official SDKs and the real Claude Code CLI (on the mock upstream,
which answers "MOCK_OK: <the prompt>"): the answer ends before the sequence, streaming or not,
and the SDKs see why."""
import anthropic
import openai

from conftest import token


def test_anthropic_sdk_stop_sequences(sdk_env):
    client = anthropic.Anthropic(base_url=sdk_env.base_url, api_key="unused")
    t = token()
    message = client.messages.create(
        model="claude", max_tokens=64, stop_sequences=["STOPHERE"],
        messages=[{"role": "user", "content": "keep this STOPHERE drop %s" % t}])
    assert message.content[0].text == "MOCK_OK: keep this "
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "STOPHERE"
    with client.messages.stream(model="claude", max_tokens=64, stop_sequences=["drop"],
                                messages=[{"role": "user", "content": "keep drop %s" % t}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "MOCK_OK: keep "
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == "drop"


def test_openai_sdk_stop(sdk_env):
    client = openai.OpenAI(base_url="http://127.0.0.1:%d/openai/v1" % sdk_env.port, api_key="unused")
    t = token()
    done = client.chat.completions.create(
        model="claude", stop=["drop"], messages=[{"role": "user", "content": "keep drop %s" % t}])
    assert done.choices[0].message.content == "MOCK_OK: keep "
    assert done.choices[0].finish_reason == "stop"
