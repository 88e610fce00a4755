#!/usr/bin/env python3
"""Smoke test of a Clozup binary under an emulator (.ci/pi): `pi_smoke.py EMULATOR BINARY`.

A fresh database on loopback; a lead created and read back through the API; its `lead.created`
event received on the SSE stream opened before; SIGTERM, and a clean exit. Generous deadlines:
emulation is slow, and CI machines are loaded.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

emulator, binary = sys.argv[1], sys.argv[2]
work = tempfile.mkdtemp()
key_file = os.path.join(work, "admin.key")
server = subprocess.Popen(
    [emulator, binary, "serve", "--db", os.path.join(work, "pi.sqlite"), "--bind", "127.0.0.1:0",
     "--log-format", "json", "--admin-key-file", key_file],
    stderr=subprocess.PIPE, text=True)
log = []


def fail(why):
    server.kill()
    print("FAIL:", why, "\n" + "".join(log[-40:]))
    sys.exit(1)


started = time.monotonic()
base = None
for line in server.stderr:
    log.append(line)
    if '"bind"' in line and "listening" in line:
        base = "http://" + json.loads(line)["bind"]
        break
if base is None:
    fail("the server exited before it listened")
print(f"listening under emulation after {time.monotonic() - started:.1f} s")
threading.Thread(target=lambda: log.extend(server.stderr), daemon=True).start()
key = open(key_file).read().strip()


def call(method, path, body=None):
    req = urllib.request.Request(base + "/api/v1" + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("authorization", "Bearer " + key)
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, json.loads(r.read())


# The event stream first, so the lead's event must arrive on it live.
events = []
stream_open = threading.Event()


def follow():
    req = urllib.request.Request(base + "/api/v1/events")
    req.add_header("authorization", "Bearer " + key)
    with urllib.request.urlopen(req, timeout=120) as r:
        stream_open.set()
        for raw in r:
            line = raw.decode().strip()
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if events[-1].get("type") == "lead.created":
                    return


threading.Thread(target=follow, daemon=True).start()
if not stream_open.wait(120):
    fail("the event stream did not open")
status, created = call("POST", "/leads", {"first_name": "Ada", "last_name": "Pi",
                                           "email": "ada@pi.example"})
if status != 201:
    fail(f"create answered {status}")
lead = created["data"]["id"]
status, read = call("GET", f"/leads/{lead}")
if status != 200 or read["data"]["email"] != "ada@pi.example":
    fail(f"read back answered {status}: {read}")
deadline = time.monotonic() + 120
while not any(e.get("type") == "lead.created"
              and e.get("data", {}).get("object", {}).get("id") == lead for e in events):
    if time.monotonic() > deadline:
        fail(f"no lead.created event for {lead}; got {events}")
    time.sleep(0.1)
server.send_signal(signal.SIGTERM)
try:
    code = server.wait(120)
except subprocess.TimeoutExpired:
    fail("no exit within 120 s of SIGTERM")
if code != 0:
    fail(f"exit code {code} after SIGTERM")
print(f"smoke test passed: lead {lead} created, read back and streamed; clean exit on SIGTERM")
