"""The web front end: a page of recommendations, asked of model serving through its Service.

GET /?user=N  ->  an HTML page
GET /healthz  ->  "ok"

There is no DNS in a Concord cluster, so the UI cannot look up "serving". It finds model
serving's Service from SERVING_URL if set, else from SERVING_SERVICE_HOST and
SERVING_SERVICE_PORT, the variables the agent sets (as the kubelet does) for every Service
that exists when the container starts. If neither is there (the pod started before the
Service was created) it exits with an error; its restart gets the variables.

Environment: POD_IP, PORT (8080), SERVING_URL.
"""

import html
import json
import os
import sys
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serving_url():
    url = os.environ.get("SERVING_URL")
    if url:
        return url.rstrip("/")
    host = os.environ.get("SERVING_SERVICE_HOST")
    port = os.environ.get("SERVING_SERVICE_PORT")
    if host and port:
        return f"http://{host}:{port}"
    return None


SERVING = serving_url()

PAGE = """<!doctype html>
<html><head><title>Movies</title></head>
<body>
<h1>Movies for user {user}</h1>
<ol>
{items}
</ol>
<p>model {version}, served by {pod}</p>
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/healthz":
            return self.reply(200, "text/plain", b"ok\n")
        if url.path != "/":
            return self.reply(404, "text/plain", b"not found\n")
        user = urllib.parse.parse_qs(url.query).get("user", ["1"])[0]
        if not user.isdigit():
            return self.reply(400, "text/plain", b"user must be a number\n")
        try:
            with urllib.request.urlopen(f"{SERVING}/recommend?user={user}", timeout=2) as r:
                rec = json.load(r)
        except (OSError, ValueError) as e:
            msg = f"model serving is unavailable: {e}\n".encode()
            return self.reply(503, "text/plain", msg)
        items = "\n".join(f"<li>{html.escape(t)}</li>" for t in rec["recommendations"])
        page = PAGE.format(
            user=html.escape(user),
            items=items,
            version=html.escape(rec["version"]),
            pod=html.escape(rec["pod"]),
        )
        return self.reply(200, "text/html; charset=utf-8", page.encode())

    def reply(self, code, content_type, body):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


def main():
    if SERVING is None:
        print("cannot find model serving: set SERVING_URL, or create the serving Service "
              "before this pod starts (SERVING_SERVICE_HOST/PORT)", file=sys.stderr)
        return 1
    host = os.environ.get("POD_IP", "127.0.0.1")
    port = int(os.environ.get("PORT", "8080"))
    ThreadingHTTPServer.request_queue_size = 128  # the listen backlog (5 by default)
    server = ThreadingHTTPServer((host, port), Handler)
    print(f"ui on {host}:{port}, model serving at {SERVING}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
