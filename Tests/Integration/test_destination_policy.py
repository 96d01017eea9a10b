"""Issue 11: the two Click2Call attacks, through the gateway's REST API and straight on the bridge's
commands socket. `sip:19005551234:x@<host>` hid a premium number behind a password from the gateway's
text check (and the host was never checked); `+18095551234` passed because every +1 number was
domestic. Both are 403 at the gateway now, and the bridge refuses the same originate with
`policy_denied` when the gateway is bypassed; nothing reaches Kamailio either way."""
import time

from test_b2bua import Bus
from test_web_gateway import stack  # noqa: F401 (the fixture: Kamailio, bridge, accounting, gateway)

from harness import DOMAIN, LOCAL

ATTACKS = ((f"sip:19005551234:x@{LOCAL}", "password_in_uri"), ("+18095551234", "nanp_foreign"))


def test_the_issues_attacks_are_refused_by_the_gateway_and_by_the_bridge(stack):  # noqa: F811
    before = stack.kamailio_invites()
    for to, rule in ATTACKS:
        status, _, problem = stack.request("POST", "/api/v1/calls", {"from": "alice", "to": to})
        assert status == 403, (to, status, problem)
        assert problem["rule"] == rule and problem["field"] == "to", problem
        assert problem["type"].endswith("/destination-denied"), problem

    bus = Bus(stack.bus["events"], stack.bus["commands"])
    try:
        for b, rule in ((f"sip:19005551234:x@{LOCAL}", "password_in_uri"), (f"sip:+18095551234@{DOMAIN}", "nanp_foreign")):
            reply = bus.command({"name": "originate", "a": {"uri": f"sip:alice@{DOMAIN}"}, "b": {"uri": b},
                                 "account": "bypass"})
            assert reply["ok"] is False, reply
            assert reply["error"]["code"] == "policy_denied", reply
            assert reply["error"]["message"].startswith(f"{rule}: b.uri: "), reply
        time.sleep(1)  # anything sent would have arrived by now
        assert stack.kamailio_invites() == before
        assert stack.journaled("call.originated") == []

        # The same socket does place a permitted call: the refusals above could have been acceptances.
        placed = bus.command({"name": "originate", "a": {"uri": f"sip:alice@{DOMAIN}"},
                              "b": {"uri": f"sip:+12025550100@{DOMAIN}"}, "account": "bypass"})
        assert placed["ok"] is True, placed
        bus.check_contract()  # policy_denied replies are in docs/asyncapi.yaml
    finally:
        bus.close()
