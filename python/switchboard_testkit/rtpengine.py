"""rtpengine, the media proxy the bridge anchors calls' media in, for the tests: started in
userspace on free ports (its ng control port, a range of media ports, a recording folder),
its ng protocol (bencoded dictionaries over UDP), and what the tests measure media with: a UDP
sink counting RTP (RFC 3550) and DTMF events (RFC 4733), a listener for rtpengine's DTMF log,
and the RTP in a recording's pcap.

    engine = RTPEngine(workdir, dtmf_log_dest=dtmf.address).start()
    engine.ng("offer", call_id="c1", from_tag="a", sdp=audio_sdp(sink_a.port))
"""
import json
import os
import random
import re
import shutil
import socket
import struct
import threading
import time
from pathlib import Path

from . import LOCAL
from .net import free_port, port_is_free
from .procs import Failed, Process, wait_until

RTPENGINE = shutil.which("rtpengine") or "/usr/bin/rtpengine"
TELEPHONE_EVENT = 101       # the RFC 4733 payload type the tests' SDPs (and sipp's DTMF pcaps) use


# --- bencode: the ng protocol's encoding (integers, byte strings, lists, dictionaries) ---

def bencode(value):
    if isinstance(value, bool) or not isinstance(value, (int, str, bytes, list, tuple, dict)):
        raise TypeError(f"cannot bencode {value!r}")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    # keys in sorted order, as bencode requires
    items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
    return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"


def bdecode(data):
    """The value in `data` (strings as str where they are UTF-8, else bytes); ValueError if
    `data` is not exactly one bencoded value."""
    value, end = _bdecode(data, 0)
    if end != len(data):
        raise ValueError(f"bencode: {len(data) - end} bytes after the value")
    return value


def _bdecode(data, i):
    kind = data[i:i + 1]
    if kind == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1:end]), end + 1
    if kind in (b"l", b"d"):
        i += 1
        items = []
        while data[i:i + 1] != b"e":
            if i >= len(data):
                raise ValueError("bencode: unterminated list or dictionary")
            item, i = _bdecode(data, i)
            items.append(item)
        if kind == b"l":
            return items, i + 1
        return dict(zip(items[::2], items[1::2])), i + 1
    if not kind.isdigit():
        raise ValueError(f"bencode: unexpected {kind!r} at {i}")
    colon = data.index(b":", i)
    start = colon + 1
    raw = data[start:start + int(data[i:colon])]
    try:
        return raw.decode(), start + len(raw)
    except UnicodeDecodeError:
        return raw, start + len(raw)


# --- the daemon ---

def free_port_range(count, low=30000, high=60000):
    """(first, last): `count` consecutive ports, each free for UDP on 127.0.0.1, starting at an
    even port (rtpengine gives RTP the even port of a pair, RTCP the odd one)."""
    for _ in range(50):
        first = random.randrange(low, high - count) & ~1
        if all(port_is_free(p, udp_and_tcp=False) for p in range(first, first + count)):
            return first, first + count - 1
    raise Failed(f"no {count} consecutive free UDP ports in {low}-{high}")


class RTPEngine:
    """One rtpengine in userspace (no kernel forwarding, no Redis) in <workdir>/rtpengine:
    ng control on 127.0.0.1:<free port>, media on `ports` free ports of 127.0.0.1, recordings
    (pcap) under recording_dir, RFC 4733 DTMF it sees reported as JSON datagrams to
    `dtmf_log_dest` ("ip:port", None: not reported). Sessions are forgotten at once on
    `delete` (--delete-delay=0), so a test's calls do not linger."""

    def __init__(self, workdir, dtmf_log_dest=None, ports=200):
        self.dir = Path(workdir) / "rtpengine"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.recording_dir = self.dir / "recordings"
        self.recording_dir.mkdir(exist_ok=True)
        self.ng_port = free_port(udp_and_tcp=False)
        self.port_min, self.port_max = free_port_range(ports)
        self.dtmf_log_dest = dtmf_log_dest
        self.proc = None
        self._sock = None

    @property
    def ng_address(self):
        return f"{LOCAL}:{self.ng_port}"

    def argv(self):
        # --config-file=none: Debian's /etc/rtpengine/rtpengine.conf would add fixed CLI and HTTP
        # ports (2224, 2225) that a second rtpengine cannot bind
        argv = [RTPENGINE, "--config-file=none", "--foreground", "--log-stderr", "--log-level=6",
                "--table=-1", f"--interface={LOCAL}", f"--listen-ng={self.ng_address}",
                f"--port-min={self.port_min}", f"--port-max={self.port_max}",
                f"--pidfile={self.dir / 'rtpengine.pid'}", "--delete-delay=0",
                f"--recording-dir={self.recording_dir}", "--recording-method=pcap"]
        if self.dtmf_log_dest:
            argv.append(f"--dtmf-log-dest={self.dtmf_log_dest}")
        return argv

    def start(self, timeout=10):
        """Starts it and returns once it answers the ng `ping`."""
        self.proc = Process("rtpengine", self.argv(), self.dir)
        wait_until(self._pongs, timeout, f"rtpengine to answer ng ping on {self.ng_address}",
                   self.log, self.proc)
        return self

    def _pongs(self):
        try:
            return self.ng("ping", timeout=0.3).get("result") == "pong"
        except Failed:
            return False

    def ng(self, command, timeout=3.0, **members):
        """Sends one ng command (members as keyword arguments, "_" for "-": call_id= is
        "call-id") and returns the reply dictionary, whatever its "result" ("ok", "pong",
        "error" with "error-reason"). Failed when no reply with the command's cookie comes
        within `timeout` s."""
        if self._sock is None:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.bind((LOCAL, 0))
        cookie = os.urandom(6).hex().encode()
        message = {"command": command, **{k.replace("_", "-"): v for k, v in members.items()}}
        self._sock.sendto(cookie + b" " + bencode(message), (LOCAL, self.ng_port))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self._sock.settimeout(left)
            try:
                data = self._sock.recv(65535)
            except (socket.timeout, ConnectionRefusedError):
                break
            got, _, body = data.partition(b" ")
            if got == cookie:       # a late reply to an earlier command that timed out is skipped
                return bdecode(body)
        raise Failed(f"no ng reply to {command!r} from {self.ng_address} within {timeout}s")

    def recordings(self):
        """The pcap files rtpengine has written (one per recorded call)."""
        return sorted((self.recording_dir / "pcaps").glob("*.pcap"))

    def stop(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.proc:
            self.proc.stop()

    def log(self, lines=80):
        """The command line and the last lines of its log (for a failing test's report)."""
        return self.proc.tail(lines) if self.proc else "<rtpengine not started>"


# --- SDP and RTP ---

def audio_sdp(port, session="switchboard-test", telephone_event=TELEPHONE_EVENT, direction="sendrecv"):
    """An SDP offering PCMU and RFC 4733 events (0-15) on 127.0.0.1:`port`."""
    return ("v=0\r\n"
            f"o=- 1 1 IN IP4 {LOCAL}\r\n"
            f"s={session}\r\n"
            f"c=IN IP4 {LOCAL}\r\n"
            "t=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 {telephone_event}\r\n"
            "a=rtpmap:0 PCMU/8000\r\n"
            f"a=rtpmap:{telephone_event} telephone-event/8000\r\n"
            f"a=fmtp:{telephone_event} 0-15\r\n"
            f"a={direction}\r\n")


def sdp_media_address(sdp):
    """(ip, port) of the first audio stream of `sdp` (its c= line: session or media level)."""
    port = re.search(r"^m=audio (\d+) ", sdp, re.M)
    ip = re.search(r"^c=IN IP4 (\S+)", sdp, re.M)
    if not port or not ip:
        raise ValueError(f"no audio stream with an IPv4 address in SDP:\n{sdp}")
    return ip.group(1), int(port.group(1))


class RTPPacket:
    """The fields of an RTP packet the tests look at; `event` and `end` read the payload as an
    RFC 4733 event (meaningful for the telephone-event payload type only). `arrival`: when it
    came (time.monotonic()), or its capture time in a pcap."""

    def __init__(self, data, arrival):
        first, second, self.seq, self.timestamp, self.ssrc = struct.unpack("!BBHII", data[:12])
        self.arrival, self.marker, self.pt = arrival, bool(second & 0x80), second & 0x7F
        offset = 12 + 4 * (first & 0x0F)        # the CSRCs
        if first & 0x10:                        # a header extension: its length in 32-bit words
            offset += 4 + 4 * struct.unpack("!H", data[offset + 2:offset + 4])[0]
        self.payload = data[offset:]
        self.event = self.end = None
        if len(self.payload) >= 4:
            self.event, self.end = self.payload[0], bool(self.payload[1] & 0x80)


def is_rtp(data):
    return len(data) >= 12 and data[0] >> 6 == 2 and not 72 <= data[1] & 0x7F <= 76   # RTCP: 200-204


class RTPSink:
    """A UDP socket on 127.0.0.1 (a phone's media port: given, or a free one) that keeps every
    RTP packet it receives, in arrival order, in a thread, until close()."""

    def __init__(self, port=None, telephone_event=TELEPHONE_EVENT):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCAL, port or 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.telephone_event = telephone_event
        self.packets = []
        self.sources = set()
        self._lock = threading.Lock()
        self._open = True
        self._thread = threading.Thread(target=self._receive, name=f"rtp-sink-{self.port}", daemon=True)
        self._thread.start()

    def _receive(self):
        while self._open:
            try:
                data, source = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:         # ICMP port unreachable from an earlier send, or closed
                continue
            if is_rtp(data):
                with self._lock:
                    self.packets.append(RTPPacket(data, time.monotonic()))
                    self.sources.add(source)

    def received(self, payload_type=None):
        """The RTP packets so far (of one payload type if given)."""
        with self._lock:
            return [p for p in self.packets if payload_type is None or p.pt == payload_type]

    def count(self, payload_type=None):
        return len(self.received(payload_type))

    def payload_types(self):
        """The payload types received, each once, in order of first arrival."""
        return list(dict.fromkeys(p.pt for p in self.received()))

    def events(self):
        """(event code, end bit) of every RFC 4733 packet, in arrival order."""
        return [(p.event, p.end) for p in self.received(self.telephone_event)]

    def digits(self):
        """The RFC 4733 events received as one code per event (one RTP timestamp per event:
        its start, updates and repeated end packets share it, RFC 4733 §2.5.1)."""
        seen = {}
        for p in self.received(self.telephone_event):
            seen.setdefault((p.ssrc, p.timestamp), p.event)
        return list(seen.values())

    def wait_for(self, count, timeout=5.0, payload_type=None):
        """Waits until `count` packets (of one payload type if given) have arrived; returns
        them. Failed if they did not within `timeout` s."""
        wait_until(lambda: self.count(payload_type) >= count, timeout,
                   f"{count} RTP packets{'' if payload_type is None else f' of PT {payload_type}'}"
                   f" on {self.port}", lambda: f"got {self.count()} (payload types {self.payload_types()})")
        return self.received(payload_type)

    def send(self, address, count=1, payload_type=0, ssrc=0x5B5B0001, payload=b"\xff" * 160, interval=0.02):
        """Sends `count` RTP packets (PCMU silence by default) from this socket to (ip, port),
        `interval` s apart: latches rtpengine onto this address and gives it media to forward."""
        for n in range(count):
            header = struct.pack("!BBHII", 0x80, payload_type | (0x80 if n == 0 else 0), n, n * 160, ssrc)
            self.sock.sendto(header + payload, address)
            if n + 1 < count:
                time.sleep(interval)

    def close(self):
        self._open = False
        self._thread.join()
        self.sock.close()


class DTMFLog:
    """The UDP socket rtpengine's --dtmf-log-dest points at: collects its JSON reports ({"callid",
    "source_tag", "type": "DTMF", "event", "duration", "volume", ...}) in a thread. Bind it before
    DTMF flows: rtpengine's first report after an ICMP "port unreachable" is lost."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCAL, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.reports = []
        self.errors = []            # datagrams that are not JSON objects
        self._open = True
        self._thread = threading.Thread(target=self._receive, name=f"dtmf-log-{self.port}", daemon=True)
        self._thread.start()

    @property
    def address(self):
        return f"{LOCAL}:{self.port}"

    def _receive(self):
        while self._open:
            try:
                data = self.sock.recv(65535)
            except (socket.timeout, OSError):
                continue
            try:
                report = json.loads(data)
            except ValueError:
                self.errors.append(data)
                continue
            (self.reports if isinstance(report, dict) else self.errors).append(report)

    def events(self, call_id=None):
        """The event codes of the DTMF reports (of one call if given), in arrival order."""
        return [r.get("event") for r in list(self.reports)
                if r.get("type") == "DTMF" and (call_id is None or r.get("callid") == call_id)]

    def wait_for(self, count, timeout=5.0, call_id=None):
        wait_until(lambda: len(self.events(call_id)) >= count, timeout,
                   f"{count} DTMF reports from rtpengine on {self.port}",
                   lambda: f"reports: {self.reports}\nnot JSON: {self.errors}")
        return self.events(call_id)

    def close(self):
        self._open = False
        self._thread.join()
        self.sock.close()


# --- recordings ---

LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL, LINKTYPE_NULL = 1, 101, 113, 0


def pcap_rtp_packets(path):
    """The RTPPackets (arrival: capture time in s) of every RTP-over-UDP/IPv4 packet in a pcap
    file (classic libpcap format, either byte order, micro- or nanosecond times). rtpengine's
    pcap recordings are LINKTYPE_RAW (IP packets, --recording-format=raw); Ethernet (sipp's),
    Linux cooked and BSD loopback captures work too."""
    data = Path(path).read_bytes()
    if len(data) < 24:
        raise ValueError(f"{path}: {len(data)} bytes, shorter than a pcap header")
    magic = data[:4]
    formats = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
               b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}
    if magic not in formats:
        raise ValueError(f"{path}: not a pcap file (magic {magic.hex()})")
    order, unit = formats[magic]
    linktype = struct.unpack(order + "I", data[20:24])[0] & 0x0FFFFFFF
    link_header = {LINKTYPE_ETHERNET: 14, LINKTYPE_RAW: 0, LINKTYPE_LINUX_SLL: 16, LINKTYPE_NULL: 4}
    if linktype not in link_header:
        raise ValueError(f"{path}: link type {linktype} not supported")
    out = []
    offset = 24
    while offset + 16 <= len(data):
        seconds, fraction, captured, _ = struct.unpack(order + "IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + captured]
        offset += 16 + captured
        ip = frame[link_header[linktype]:]
        if linktype == LINKTYPE_ETHERNET and frame[12:14] != b"\x08\x00":
            continue                        # not IPv4
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue                        # not IPv4, or not UDP
        udp = ip[4 * (ip[0] & 0x0F):]
        if len(udp) >= 8 and is_rtp(udp[8:]):
            out.append(RTPPacket(udp[8:], seconds + fraction * unit))
    return out


def pcap_rtp_duration_ms(path):
    """(ms between the first and the last RTP packet's capture time, number of RTP packets) of
    a pcap file, e.g. a call rtpengine recorded."""
    packets = pcap_rtp_packets(path)
    if not packets:
        return 0.0, 0
    return (packets[-1].arrival - packets[0].arrival) * 1000.0, len(packets)



DTMF_EVENTS = "0123456789*#ABCD"         # RFC 4733 §3.2: event codes 0-15


def rtp_packet(payload_type, seq, timestamp, ssrc, payload, marker=False):
    return struct.pack("!BBHII", 0x80, payload_type | (0x80 if marker else 0), seq & 0xFFFF,
                       timestamp & 0xFFFFFFFF, ssrc) + payload


def write_pcap(path, packets, port=6000):
    """Writes [(send time in s, RTP packet)] as a pcap (Ethernet: what sipp's play_pcap_audio
    reads) of UDP 127.0.0.1:port -> 127.0.0.1:port (sipp replaces addresses and ports, and keeps
    the times between packets). Returns `path`."""
    frames = []
    for n, (at, rtp) in enumerate(packets):
        udp = struct.pack("!HHHH", port, port, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17, 0,
                         socket.inet_aton(LOCAL), socket.inet_aton(LOCAL)) + udp
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        micros = round(at * 1e6)
        frames.append(struct.pack("<IIII", micros // 1000000, micros % 1000000, len(frame), len(frame)) + frame)
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)
    Path(path).write_bytes(header + b"".join(frames))
    return path


def write_rtp_pcap(path, duration_ms, ssrc=0x5B5B0002):
    """A pcap of `duration_ms` of PCMU silence: an RTP packet of 160 samples every 20 ms."""
    return write_pcap(path, [(n * 0.02, rtp_packet(0, n, n * 160, ssrc, b"\xff" * 160, marker=n == 0))
                             for n in range(max(1, duration_ms // 20))])


def write_dtmf_pcap(path, digit, seq, timestamp, ssrc=0x5B5B0002, payload_type=TELEPHONE_EVENT):
    """A pcap of one RFC 4733 digit ("0"-"9", "*", "#", "A"-"D") as phones send it: 140 ms, a
    packet every 20 ms with the duration so far (the first with the marker bit), the end packet
    three times (§2.5.1.4); all with the event's start `timestamp`, sequence numbers from `seq`."""
    event = DTMF_EVENTS.index(digit)
    packets = [(k * 0.02, rtp_packet(payload_type, seq + k, timestamp, ssrc,
                                     struct.pack("!BBH", event, 10, 160 * (k + 1)), marker=k == 0))
               for k in range(6)]
    end = struct.pack("!BBH", event, 0x80 | 10, 160 * 7)
    packets += [(0.12, rtp_packet(payload_type, seq + 6, timestamp, ssrc, end))] * 3
    return write_pcap(path, packets)


def caller_media_pcaps(folder, prefix, audio_ms, digits, gap_ms):
    """The pcaps scenarios/phone_call_dtmf.xml plays, as its keys: audio_pcap (audio_ms of PCMU),
    dtmf1_pcap.. (each of `digits`, gap_ms apart after the audio), one RTP stream: one SSRC,
    sequence numbers and timestamps that go on from the audio at the pace the scenario plays
    them. rtpengine forwards RFC 4733 events when their timestamps say, so unrelated captures
    (sipp's own dtmf_2833_*.pcap, 1 s apart in RTP time) arrive late or not at all."""
    keys = {"audio_pcap": write_rtp_pcap(Path(folder) / f"{prefix}-audio.pcap", audio_ms)}
    seq = max(1, audio_ms // 20)
    for i, digit in enumerate(digits, 1):
        at_ms = audio_ms + (i - 1) * gap_ms
        keys[f"dtmf{i}_pcap"] = write_dtmf_pcap(Path(folder) / f"{prefix}-dtmf{i}.pcap", digit,
                                                seq=seq + 7 * (i - 1), timestamp=at_ms * 8)
    return keys
