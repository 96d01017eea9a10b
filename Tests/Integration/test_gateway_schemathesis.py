"""schemathesis against the web gateway's OpenAPI document, with a small budget and a fixed seed so CI
sends the same few hundred requests every run (scripts/schemathesis runs the full budget): every check,
once with an API key and once with a page session. A finding fails the test with schemathesis' report
of it, whose curl line reproduces it."""
from switchboard_testkit import apifuzz

MAX_EXAMPLES = 3    # per operation and phase: about 310 requests a pass, 620 in all; 35-45 s on 2 busy cores
SEED = 20261204


def test_the_gateway_answers_as_its_openapi_document_says(api_stack):
    for result in apifuzz.run(api_stack, MAX_EXAMPLES, SEED):
        report = result["log"].read_text()
        assert result["status"] == 0 and not result["failures"], f"{result['name']} pass:\n{report[-8000:]}"
        # It did reach the gateway: every operation of the pass, answered.
        assert len(result["operations"]) >= 9 and result["answered"] >= 200, (result, report[-3000:])
