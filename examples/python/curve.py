"""CURVE for the examples: reads the key files `switchboard-worker keygen` writes and sets them on
a client socket, so a bridge started with --curve-key/--curve-clients lets it in.

A key file holds `public-key = <z85>` (and in the secret file `secret-key = <z85>`) lines;
`#` starts a comment. pyzmq takes the 40-character Z85 text as it is.
"""
import argparse


def read_key_file(path):
    fields = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, value = line.partition("=")
                fields[name.strip()] = value.strip()
    return fields


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--curve-key", help="this client's key pair file (switchboard-worker keygen)")
    parser.add_argument("--bridge-key", help="the bridge's public key file (its .pub)")


def secure(sock, args):
    """Turns CURVE on for `sock` before it connects; a no-op without --curve-key."""
    if not args.curve_key:
        return
    if not args.bridge_key:
        raise SystemExit("--curve-key needs --bridge-key")
    mine = read_key_file(args.curve_key)
    sock.curve_secretkey = mine["secret-key"].encode()
    sock.curve_publickey = mine["public-key"].encode()
    sock.curve_serverkey = read_key_file(args.bridge_key)["public-key"].encode()

