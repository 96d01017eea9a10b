"""Free ports on 127.0.0.1."""
import random
import socket

from . import LOCAL


def port_is_free(port, udp_and_tcp=True):
    """Whether `port` can be bound on 127.0.0.1 for UDP (and TCP)."""
    socks = []
    try:
        for kind in [socket.SOCK_DGRAM] + ([socket.SOCK_STREAM] if udp_and_tcp else []):
            s = socket.socket(socket.AF_INET, kind)
            socks.append(s)
            s.bind((LOCAL, port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_port(udp_and_tcp=True):
    """A port that is free on 127.0.0.1 for UDP (and TCP: ZeroMQ and HTTP need TCP)."""
    for _ in range(200):
        port = random.randint(20000, 60000)
        if port_is_free(port, udp_and_tcp):
            return port
    raise RuntimeError("no free port")


def free_ports(count):
    """`count` distinct ports, each free on 127.0.0.1 for UDP and TCP."""
    ports = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def udp_port_in_use(port):
    """Whether something is bound to UDP `port` on 127.0.0.1 (a sipp or a phone that started)."""
    return not port_is_free(port, udp_and_tcp=False)
