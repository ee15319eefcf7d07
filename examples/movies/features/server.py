"""The feature store: each user's genre preferences, for model serving.

GET /features?user=N  ->  {"user": N, "genres": {"scifi": 0.8, ...}}
GET /healthz          ->  "ok"

The preferences are made up from the user's number (the same number always gives the same
preferences), standing in for what the training job would compute from ratings.

Environment: POD_IP, PORT (8080).
"""

import json
import os
import random
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GENRES = ["action", "animation", "comedy", "crime", "drama", "fantasy", "noir", "romance", "scifi"]


def features(user):
    rng = random.Random(user)
    return {g: round(rng.random(), 2) for g in GENRES}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/healthz":
            return self.reply(200, "text/plain", b"ok\n")
        if url.path == "/features":
            try:
                user = int(urllib.parse.parse_qs(url.query).get("user", ["0"])[0])
            except ValueError:
                return self.reply(400, "text/plain", b"user must be a number\n")
            body = json.dumps({"user": user, "genres": features(user)}).encode() + b"\n"
            return self.reply(200, "application/json", body)
        return self.reply(404, "text/plain", b"not found\n")

    def reply(self, code, content_type, body):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


def main():
    host = os.environ.get("POD_IP", "127.0.0.1")
    port = int(os.environ.get("PORT", "8080"))
    ThreadingHTTPServer.request_queue_size = 128  # the listen backlog (5 by default)
    server = ThreadingHTTPServer((host, port), Handler)
    print(f"features on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
