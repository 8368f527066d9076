#!/usr/bin/env python3
"""An HTTP proxy in front of an OpenAI-compatible server that holds every POST for DELAY
seconds before forwarding it: a stand-in for a remote GPU server's latency when measuring how
well a run keeps the model fed (scripts/bench_pipelining.sh).

With REPLAY (a JSON-lines file), every answer the upstream gives is appended to it, and a
request already in it is answered from it after DELAY without reaching the upstream. A first
run records the real model's answers; later runs see the same answers with only the delay:
a model server that costs this machine's CPUs nothing, as a remote GPU box would. (A request
is identified by its path and body; the runs being compared send the same prompts.)

usage: delay_proxy.py UPSTREAM_HOST:PORT DELAY_SECS [REPLAY]   (prints the proxy's URL, then serves)
"""

import hashlib
import http.client
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM, DELAY = sys.argv[1], float(sys.argv[2])
REPLAY = sys.argv[3] if len(sys.argv) > 3 else None
answers = {}
lock = threading.Lock()
if REPLAY and os.path.exists(REPLAY):
    for line in open(REPLAY):
        entry = json.loads(line)
        answers[entry["key"]] = (entry["status"], entry["payload"].encode())
replayed = forwarded = 0


def key(path, body):
    return hashlib.sha256(path.encode() + b"\0" + (body or b"")).hexdigest()


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, payload):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def forward(self, body):
        global forwarded
        host, port = UPSTREAM.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=600)
        headers = {"Content-Type": "application/json"}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        if REPLAY and body is not None and resp.status == 200:
            with lock:
                forwarded += 1
                answers[key(self.path, body)] = (resp.status, payload)
                with open(REPLAY, "a") as f:
                    entry = {"key": key(self.path, body), "status": resp.status, "payload": payload.decode()}
                    f.write(json.dumps(entry) + "\n")
        self.reply(resp.status, payload)

    def do_GET(self):
        self.forward(None)

    def do_POST(self):
        global replayed
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(DELAY)
        known = answers.get(key(self.path, body)) if REPLAY else None
        if known:
            with lock:
                replayed += 1
            self.reply(*known)
        else:
            self.forward(body)

    def log_message(self, *_):
        pass


# Background jobs of a script ignore SIGINT: stop on SIGTERM, printing the counts.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
print(f"http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
try:
    server.serve_forever()
finally:
    print(f"replayed {replayed}, forwarded {forwarded}", file=sys.stderr, flush=True)
