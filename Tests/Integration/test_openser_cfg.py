"""openser-cfg/kamailio.cfg against a real Kamailio 5.6 and sipp (no Swift code)."""
import re
import socket
import uuid

import harness
from harness import DOMAIN, LOCAL

USERS = {"alice": "alice-secret", "bob": "bob-secret"}


def caller(sipp, name, kamailio, number, status=None, user="alice", password=None, **kw):
    scenario = "uac_auth_call.xml" if status is None else "uac_auth_status.xml"
    return sipp.run(name, scenario, kamailio.port, status=status,
                    keys={"user": user, "domain": DOMAIN},
                    extra=["-s", number, "-au", user, "-ap", password or USERS[user]], **kw)


def test_config_accepted(tmp_path):
    k = harness.Kamailio(tmp_path, subscribers=USERS, bridge_ports=[5080])
    res = k.check_config()
    assert res.returncode == 0, res.stdout + res.stderr
    assert "config file ok" in res.stdout + res.stderr


def test_bridge_branch_outlasts_the_bridges_longest_ring(swift):
    """Kamailio's timers on the branch to a bridge (fr_inv_timer, the INVITE's lifetime) are
    above the bridge's max_ring_timeout: a ring the bridge allows is not cut by the proxy."""
    cfg = (harness.REPO / "openser-cfg" / "kamailio.cfg").read_text()
    ring_ms = int(re.search(r"^#!define BRIDGE_RING_MS (\d+)$", cfg, re.M).group(1))
    to_bridge = [cfg[m.start():cfg.index("route(RELAY);", m.start())]
                 for m in re.finditer(r"ds_(select|next)_dst\(", cfg)]
    assert len(to_bridge) == 2, to_bridge
    for block in to_bridge:
        assert "t_set_fr(BRIDGE_RING_MS, BRIDGE_TIMEOUT_MS);" in block, block
        assert "t_set_max_lifetime(BRIDGE_RING_MS, 0);" in block, block
    settings = swift.run("switchboard-bridge", "--check-config")
    max_ring_s = int(re.search(r"^max_ring_timeout\s*=?\s*(\d+)", settings, re.M).group(1))
    assert ring_ms > max_ring_s * 1000, (ring_ms, max_ring_s)


def test_register_requires_auth_then_succeeds(start_kamailio, sipp):
    k = start_kamailio(subscribers=USERS)
    # without credentials: challenged
    assert harness.sip_request(k.port, "REGISTER", f"sip:{DOMAIN}") == 401
    res = sipp.run("register", "register_auth.xml", k.port,
                   keys={"user": "bob", "domain": DOMAIN, "contact_port": "5999"},
                   extra=["-au", "bob", "-ap", USERS["bob"]])
    assert res.code == 0, res.report()


def test_register_with_wrong_password_fails(start_kamailio, sipp):
    k = start_kamailio(subscribers=USERS)
    res = sipp.run("register", "register_auth.xml", k.port,
                   keys={"user": "bob", "domain": DOMAIN, "contact_port": "5999"},
                   extra=["-au", "bob", "-ap", "wrong"], timeout=5)
    assert res.code != 0, res.report()


def test_call_to_registered_user_completes(start_kamailio, sipp):
    k = start_kamailio(subscribers=USERS)
    bob_port, bob = sipp.start("bob", "uas_answer.xml")
    reg = sipp.run("register", "register_auth.xml", k.port,
                   keys={"user": "bob", "domain": DOMAIN, "contact_port": str(bob_port)},
                   extra=["-au", "bob", "-ap", USERS["bob"]])
    assert reg.code == 0, reg.report()
    res = caller(sipp, "alice", k, "bob")
    assert res.code == 0, res.report()
    assert bob.finish() == 0, bob.report()
    # the callee never sees Switchboard headers (only the bridge does)
    invite = bob.received("INVITE")[0]
    assert not harness.header_values(invite, "X-Switchboard-Auth-User"), invite


def test_call_to_unregistered_subscriber_gets_480(start_kamailio, sipp):
    k = start_kamailio(subscribers=USERS)
    res = caller(sipp, "alice", k, "bob", status=480)
    assert res.code == 0, res.report()


def test_unauthenticated_foreign_caller_cannot_reach_bridge(start_kamailio):
    k = start_kamailio(subscribers=USERS, bridge_ports=[harness.free_port()])
    status = harness.sip_request(k.port, "INVITE", f"sip:12025550100@{LOCAL}:{k.port}")
    assert status == 403


def test_call_with_no_bridge_up_gets_503(start_kamailio, sipp):
    dead = harness.free_port()       # nothing listens there
    k = start_kamailio(subscribers=USERS, bridge_ports=[dead])
    first = caller(sipp, "first", k, "12025550100", status=503)
    assert first.code == 0, first.report()
    # the timed-out bridge is now marked inactive: the next call is refused at once
    second = caller(sipp, "second", k, "12025550100", status=503)
    assert second.code == 0, second.report()
    assert second.elapsed < first.elapsed, (first.elapsed, second.elapsed)
    assert "marked inactive" in k.tail(400)


def test_dead_bridge_fails_over_to_next(start_kamailio, sipp):
    gw_port, gw = sipp.start("gateway", "uas_answer.xml")
    target = f"sip:12025550100@{LOCAL}:{gw_port}"
    bridge_port, bridge = sipp.start("bridge", "uas_redirect.xml", keys={"target": target})
    # the dead bridge has the higher priority, so with algorithm 8 it is tried first
    k = start_kamailio(subscribers=USERS, bridge_ports=[harness.free_port(), bridge_port],
                       defines={"DS_ALG": '"8"'})
    res = caller(sipp, "alice", k, "12025550100")
    assert res.code == 0, res.report()
    log = k.tail(400)
    assert "marked inactive" in log and f"failover of" in log, log
    assert bridge.finish() == 0, bridge.report()
    assert gw.finish() == 0, gw.report()


def test_redirect_and_header_contract(start_kamailio, sipp):
    """caller -> Kamailio -> sipp 'bridge' answers 302 -> Kamailio follows it to a
    sipp gateway -> 200, ACK, BYE. The bridge must see the headers Kamailio adds,
    not the spoofed ones the caller sent."""
    gw_port, gw = sipp.start("gateway", "uas_answer.xml")
    target = f"sip:12025550100@{LOCAL}:{gw_port}"
    bridge_port, bridge = sipp.start("bridge", "uas_redirect.xml", keys={"target": target})
    k = start_kamailio(subscribers=USERS, bridge_ports=[bridge_port])

    res = caller(sipp, "alice", k, "12025550100")
    assert res.code == 0, res.report()
    assert bridge.finish() == 0, bridge.report()
    assert gw.finish() == 0, gw.report()

    invite = bridge.received("INVITE")[0]
    assert harness.header_values(invite, "X-Switchboard-Auth-User") == ["alice"], invite
    caller_port = res.proc.argv[res.proc.argv.index("-p") + 1]
    assert harness.header_values(invite, "X-Switchboard-Source") == \
        [f"{LOCAL}:{caller_port};transport=udp"], invite
    assert "mallory" not in invite and "192.0.2.66" not in invite, invite
    # the redirect target got the call without any Switchboard header
    gw_invite = gw.received("INVITE")[0]
    assert gw_invite.startswith(f"INVITE {target}"), gw_invite
    assert "X-Switchboard" not in gw_invite, gw_invite
    # BYE went through Kamailio (Record-Route) to the gateway
    assert gw.received("BYE"), gw.messages.read_text()


def test_redirect_back_to_a_bridge_is_not_followed(start_kamailio, sipp):
    """A bridge that redirects to a bridge address: the branch is dropped (loop
    protection) and the caller gets 480 instead of a second INVITE to the bridge."""
    port = harness.free_port()
    _, bridge = sipp.start("bridge", "uas_redirect.xml", port=port,
                           keys={"target": f"sip:12025550100@{LOCAL}:{port}"})
    k = start_kamailio(subscribers=USERS, bridge_ports=[port])
    res = caller(sipp, "alice", k, "12025550100", status=480)
    assert res.code == 0, res.report()
    assert bridge.finish() == 0, bridge.report()
    assert len(bridge.received("INVITE")) == 1


def test_bridge_legs_go_only_to_local_users_and_trunks(start_kamailio):
    """A bridge's leg to a host that is neither a local user nor a configured trunk is
    refused with 403 (no free relay to whatever host a worker or a command names); a
    trunk gets the INVITE."""
    bridge, trunk, stranger = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3))
    try:
        for s in (bridge, trunk, stranger):
            s.bind((LOCAL, 0))
            s.settimeout(3)
        bport, tport, sport = (s.getsockname()[1] for s in (bridge, trunk, stranger))
        k = start_kamailio(subscribers=USERS, bridge_ports=[bport], trunks=[f"{LOCAL}:{tport}"])

        def leg(port):
            uri = f"sip:19005551234@{LOCAL}:{port}"
            bridge.sendto((f"INVITE {uri} SIP/2.0\r\n"
                           f"Via: SIP/2.0/UDP {LOCAL}:{bport};rport;branch=z9hG4bK{uuid.uuid4().hex}\r\n"
                           f"From: <sip:alice@{DOMAIN}>;tag={uuid.uuid4().hex[:8]}\r\nTo: <{uri}>\r\n"
                           f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
                           f"Contact: <sip:switchboard@{LOCAL}:{bport}>\r\nContent-Length: 0\r\n\r\n").encode(),
                          (LOCAL, k.port))

        leg(sport)
        refusal = bridge.recv(65535).decode()
        assert refusal.startswith("SIP/2.0 403 Not A Trunk"), refusal
        try:
            stranger.recv(65535)
            raise AssertionError("the stranger got the bridge's leg")
        except socket.timeout:
            pass
        leg(tport)
        relayed = trunk.recv(65535).decode()
        assert relayed.startswith(f"INVITE sip:19005551234@{LOCAL}:{tport}"), relayed
    finally:
        for s in (bridge, trunk, stranger):
            s.close()
