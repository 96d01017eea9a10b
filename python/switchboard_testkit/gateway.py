"""The web gateway (switchboard-gateway serve) from outside."""
import json
import urllib.request

from . import LOCAL


def healthy(port):
    """Whether the gateway on 127.0.0.1:port reports status "ok" on /api/v1/health (it reaches
    its bridges)."""
    try:
        with urllib.request.urlopen(f"http://{LOCAL}:{port}/api/v1/health", timeout=1) as response:
            return json.loads(response.read()).get("status") == "ok"
    except (OSError, ValueError):
        return False
