#!/usr/bin/env python3
"""An HTTP proxy in front of an OpenAI-compatible server that holds every POST for DELAY
seconds before forwarding it: a stand-in for a remote GPU server's latency when measuring how
well a run keeps the model fed (scripts/bench_pipelining.sh).

usage: delay_proxy.py UPSTREAM_HOST:PORT DELAY_SECS   (prints the proxy's URL, then serves)
"""

import http.client
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM, DELAY = sys.argv[1], float(sys.argv[2])


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self, body):
        host, port = UPSTREAM.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=600)
        headers = {"Content-Type": "application/json"}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        self.send_response(resp.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self.forward(None)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(DELAY)
        self.forward(body)

    def log_message(self, *_):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
print(f"http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
server.serve_forever()
