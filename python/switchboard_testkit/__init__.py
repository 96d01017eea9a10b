"""Switchboard's Python test kit, shared by the integration tests (Tests/Integration), the
benchmarks (bench/) and scripts/demo's helper (scripts/lib/sbtools.py): standard library only,
for Debian's /usr/bin/python3.

    net       free ports on 127.0.0.1
    procs     child processes stopped at exit, waiting, logs, CPU and memory from /proc
    sip       one-shot SIP requests over UDP (OPTIONS probes, INVITE, REGISTER with digest)
    ua        a phone for the benches: many calls on one UDP socket, mid-call requests, retransmissions
    kamailio  Kamailio running the shipped openser-cfg/kamailio.cfg
    sipp      sipp scenario runs for the tests; the statistics of the benches' load runs
    rtpengine rtpengine on free ports and its ng protocol; RTP sinks, its DTMF log, pcaps to play
              (sipp) and to measure (recordings)
    metrics   the bridge's and the gateway's Prometheus /metrics
    gateway   the web gateway's health
    apifuzz   schemathesis against the gateway's OpenAPI document, on a bridge + gateway it starts
    bench     what the bench scripts share: binaries, the router's dial plan, results files

Put the folder holding this package on sys.path (the bench scripts and scripts/lib/sbtools.py
do it from __file__, the tests in Tests/Integration/conftest.py)."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCAL = "127.0.0.1"             # everything binds and talks here only
DOMAIN = "switchboard.local"    # the SIP domain Kamailio serves in tests and benches
