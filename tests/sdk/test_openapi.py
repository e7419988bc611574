"""The OpenAPI document, checked against the live server: schemathesis generates requests for every
route /openapi.json describes; no answer may be a 5xx and every answer (status, content type,
headers, body) must match the document. Runs on the fake CLI, so it is fast and deterministic."""

import subprocess
import sys
from pathlib import Path

from conftest import REPO, Server

FAKE_CLAUDE = REPO / "target" / "debug" / "fake-claude"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])


def test_every_response_matches_the_openapi_document(sdk_env, tmp_path):
    server = Server(tmp_path, sdk_env.mock, "schemathesis", {
        "CLINVOKER__BACKENDS__CLAUDE__COMMAND": str(FAKE_CLAUDE),
        "CLINVOKER__POOL__MAX_QUEUE": "256",
    })
    try:
        run = subprocess.run(
            [str(SCHEMATHESIS), "run", server.url + "/openapi.json", "--checks", CHECKS,
             "--max-examples", "40", "--workers", "1", "--seed", "20261125"],
            capture_output=True, text=True, timeout=600)
    finally:
        stop_error = server.wait_stopped()
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert "Stateful" in run.stdout and " passed" in run.stdout, report
    assert stop_error is None, stop_error
