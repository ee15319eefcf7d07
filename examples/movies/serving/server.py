"""Model serving: recommends movies for a user.

GET /recommend?user=N  ->  {"user": N, "version": "v1", "pod": ..., "recommendations": [...]}
GET /healthz           ->  "ok" (the readiness probe)

The "model" is a tiny catalogue scored against the user's genre preferences, which come from
the features service when it can be reached (and from a default profile when it cannot: a
recommendation without personal features is better than an error). VERSION picks the
scoring: v1 ranks by preference, v2 also rewards popular films and keeps the list diverse.

Environment:
  POD_IP, PORT            where to listen (the agent sets POD_IP; PORT defaults to 8080)
  VERSION                 the model version reported in every answer (v1)
  FEATURES_URL            the features service (default: http://$FEATURES_SERVICE_HOST:
                          $FEATURES_SERVICE_PORT, the variables the agent sets for Services
                          that existed when the pod started)
  SHUTDOWN_DELAY_SECONDS  how long to keep serving after SIGTERM (2)

On SIGTERM it keeps serving for SHUTDOWN_DELAY_SECONDS (the pod is terminating, so the
endpoints drop it and the proxies stop sending it new connections meanwhile), then stops
accepting, finishes the requests in flight and exits 0.
"""

import json
import os
import signal
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CATALOGUE = [
    # title, genres, popularity (0..1)
    ("The Matrix", {"scifi": 1.0, "action": 0.8}, 0.95),
    ("Arrival", {"scifi": 1.0, "drama": 0.6}, 0.7),
    ("Blade Runner", {"scifi": 0.9, "noir": 0.8}, 0.8),
    ("Casablanca", {"drama": 0.9, "romance": 0.9}, 0.75),
    ("Spirited Away", {"animation": 1.0, "fantasy": 0.9}, 0.9),
    ("Toy Story", {"animation": 1.0, "comedy": 0.8}, 0.92),
    ("Heat", {"action": 0.9, "crime": 1.0}, 0.7),
    ("The Godfather", {"crime": 1.0, "drama": 0.9}, 0.97),
    ("Amelie", {"romance": 0.8, "comedy": 0.8}, 0.72),
    ("Mad Max: Fury Road", {"action": 1.0, "scifi": 0.6}, 0.85),
    ("Groundhog Day", {"comedy": 1.0, "fantasy": 0.5}, 0.78),
    ("Chinatown", {"noir": 1.0, "crime": 0.8}, 0.65),
]
DEFAULT_PROFILE = {"drama": 0.5, "comedy": 0.5, "action": 0.5, "scifi": 0.5}

VERSION = os.environ.get("VERSION", "v1")
POD_NAME = os.environ.get("HOSTNAME", "")


def features_url():
    url = os.environ.get("FEATURES_URL")
    if url:
        return url.rstrip("/")
    host = os.environ.get("FEATURES_SERVICE_HOST")
    port = os.environ.get("FEATURES_SERVICE_PORT")
    if host and port:
        return f"http://{host}:{port}"
    return None


FEATURES = features_url()


def user_profile(user):
    """The user's genre preferences from the features service, or the default profile."""
    if FEATURES is None:
        return DEFAULT_PROFILE, "default"
    try:
        with urllib.request.urlopen(f"{FEATURES}/features?user={user}", timeout=0.5) as r:
            return json.load(r)["genres"], "features"
    except (OSError, ValueError, KeyError):
        return DEFAULT_PROFILE, "default"


def recommend(user, count=3):
    profile, source = user_profile(user)
    scored = []
    for title, genres, popularity in CATALOGUE:
        score = sum(profile.get(g, 0.0) * w for g, w in genres.items())
        if VERSION != "v1":
            score += 0.5 * popularity
        scored.append((score, title, genres))
    scored.sort(key=lambda s: (-s[0], s[1]))
    if VERSION == "v1":
        picks = [t for _, t, _ in scored[:count]]
    else:
        # v2: no two picks share their main genre.
        picks, seen = [], set()
        for _, title, genres in scored:
            main = max(genres, key=genres.get)
            if main not in seen:
                picks.append(title)
                seen.add(main)
            if len(picks) == count:
                break
    return {
        "user": user,
        "recommendations": picks,
        "profile": source,
        "pod": POD_NAME,
        "version": VERSION,
    }


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so nothing lingers at shutdown and the Service
    # proxy balances every request.
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/healthz":
            return self.reply(200, "text/plain", b"ok\n")
        if url.path == "/recommend":
            query = urllib.parse.parse_qs(url.query)
            try:
                user = int(query.get("user", ["0"])[0])
            except ValueError:
                return self.reply(400, "text/plain", b"user must be a number\n")
            body = json.dumps(recommend(user)).encode() + b"\n"
            return self.reply(200, "application/json", body)
        return self.reply(404, "text/plain", b"not found\n")

    def reply(self, code, content_type, body):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass  # one line per request would drown the log


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # the listen backlog (5 by default)
    daemon_threads = False  # server_close() waits for the requests in flight
    block_on_close = True


def main():
    host = os.environ.get("POD_IP", "127.0.0.1")
    port = int(os.environ.get("PORT", "8080"))
    delay = float(os.environ.get("SHUTDOWN_DELAY_SECONDS", "2"))
    server = Server((host, port), Handler)
    stopping = threading.Event()

    def on_term(signum, frame):
        if stopping.is_set():
            return
        stopping.set()
        print(f"SIGTERM: serving {delay:g}s more, then stopping", flush=True)

        def stop():
            time.sleep(delay)
            server.shutdown()  # stop accepting; serve_forever returns

        threading.Thread(target=stop, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    print(
        f"serving model {VERSION} on {host}:{port}"
        f" (features: {FEATURES or 'none, default profile'})",
        flush=True,
    )
    server.serve_forever()
    server.server_close()  # closes the socket, then joins the request threads
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
