"""Prometheus text from /metrics (the bridge's --metrics-listen, the gateway's HTTP port)."""
import re
import urllib.request


def scrape(url, timeout=2):
    """The text of `url`, or None if it does not answer."""
    try:
        return urllib.request.urlopen(url, timeout=timeout).read().decode()
    except OSError:
        return None


def samples(text):
    """{metric name: value summed over its label sets} of a Prometheus text."""
    out = {}
    for line in (text or "").splitlines():
        if not line or line.startswith("#"):
            continue
        name = re.split(r"[ {]", line, 1)[0]
        try:
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        except ValueError:
            continue
    return out


def metrics(url):
    """Every metric of `url` as {name: summed value}; {} if it does not answer."""
    return samples(scrape(url))


def metric(url, name):
    """One metric's value summed over its label sets (0.0 if absent); None if `url` does not answer."""
    text = scrape(url)
    return None if text is None else samples(text).get(name, 0.0)
