#!/usr/bin/env python3
"""Sends GET requests to a URL at a steady rate and counts the failures.

    python3 load.py URL [--rate 50] [--duration SECONDS] [--expect TEXT]

It runs for --duration seconds, or until Ctrl-C (SIGINT) or SIGTERM, then prints

    versions: v1=812 v2=1488
    last: v2
    requests=2300 failed=0

A request fails when it cannot connect, times out (2 s), gets a status other than 200, or
gets a wrong body: a JSON body must be an object with a "version"; any other body must be
non-empty; with --expect, the body must contain TEXT. The version of each answer (JSON's
"version", or "model vN" in the UI's page) is counted. Each request is a new connection, as
the Service proxy balances connections. Every 5 s a progress line goes to stderr, and the
first failures are described there.
"""

import argparse
import http.client
import json
import re
import signal
import sys
import time
import urllib.parse

MODEL = re.compile(r"model (v\w+)")


class Stop(Exception):
    pass


def stop(signum, frame):
    raise Stop()


def one(url, timeout, expect):
    """One request: (version or None, error or None)."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, http.client.HTTPException) as e:
        return None, f"{type(e).__name__}: {e}"
    finally:
        conn.close()
    if resp.status != 200:
        return None, f"status {resp.status}: {body[:100]!r}"
    text = body.decode("utf-8", "replace")
    if expect is not None and expect not in text:
        return None, f"body without {expect!r}: {text[:100]!r}"
    if "json" in (resp.getheader("Content-Type") or ""):
        try:
            doc = json.loads(text)
            return str(doc["version"]), None
        except (ValueError, KeyError, TypeError):
            return None, f"bad JSON body: {text[:100]!r}"
    if not text:
        return None, "empty body"
    m = MODEL.search(text)
    return (m.group(1) if m else None), None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url")
    ap.add_argument("--rate", type=float, default=50, help="requests per second (50)")
    ap.add_argument("--duration", type=float, default=None, help="seconds (until stopped)")
    ap.add_argument("--expect", default=None, help="text every body must contain")
    ap.add_argument("--timeout", type=float, default=2.0, help="per request, seconds (2)")
    args = ap.parse_args()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    requests = failed = 0
    versions = {}
    last = None
    start = time.monotonic()
    next_report = start + 5
    try:
        while args.duration is None or time.monotonic() - start < args.duration:
            # A steady rate: request i goes at start + i/rate (at once when running late).
            due = start + requests / args.rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            version, error = one(args.url, args.timeout, args.expect)
            requests += 1
            if error is not None:
                failed += 1
                if failed <= 10:
                    print(f"failed: {error}", file=sys.stderr, flush=True)
            elif version is not None:
                versions[version] = versions.get(version, 0) + 1
                last = version
            if time.monotonic() >= next_report:
                next_report += 5
                print(
                    f"t={time.monotonic() - start:.0f}s requests={requests} failed={failed}"
                    f" last={last}",
                    file=sys.stderr,
                    flush=True,
                )
    except Stop:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("versions: " + " ".join(f"{v}={n}" for v, n in sorted(versions.items())))
    print(f"last: {last}")
    print(f"requests={requests} failed={failed}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
