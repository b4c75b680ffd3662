#!/usr/bin/env python3
"""Network test of the firmware under QEMU, run by ci.sh inside the network
namespace it creates: python3 net_test.py ADDR PORT MAX_CLIENTS

Talks only to ADDR (the firmware, inside that namespace). Every wait is
bounded; any unexpected reply fails the test."""

import json
import socket
import subprocess
import sys
import time

HOST, PORT, MAX_CLIENTS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
CHECKS = 0


def check(what, got, want):
    global CHECKS
    CHECKS += 1
    if got != want:
        sys.exit(f"FAIL {what}: got {got!r}, want {want!r}")
    print(f"ok   {what}: {got!r}")


class Client:
    def __init__(self):
        self.sock = socket.create_connection((HOST, PORT), timeout=5)
        self.file = self.sock.makefile("rb")

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        return self.file.readline().decode()

    def ask(self, request):
        self.send(request.encode() + b"\n")
        return self.line()

    def rest(self):
        return self.file.read()

    def close(self):
        self.file.close()
        self.sock.close()


def connect_retrying(seconds):
    """Slots are recycled a moment after a close: retry refused connects."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return Client()
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


ping = subprocess.run(["ping", "-c", "2", "-W", "2", HOST], capture_output=True, text=True)
check("ICMP echo", ping.returncode, 0)

a = Client()
check("ping", a.ask('{"cmd":"ping"}'), '{"ok":true,"pong":true}\n')
check(
    "reading",
    a.ask('{"location":"living_room","temp":25.55,"hum":60,"seq":7}'),
    '{"ok":true,"location":"living_room","temp":25.6,"hum":60.0,"seq":7}\n',
)
check(
    "invalid field",
    a.ask('{"location":"x","temp":"hot","hum":1}'),
    '{"ok":false,"error":"invalid_field","field":"temp"}\n',
)
# Two requests split over segments, pipelined in one.
a.send(b'{"cmd":"pi')
time.sleep(0.05)
a.send(b'ng"}\r\n{"location":"attic","temp":-0.15,"hum":0}\n')
check("split line", a.line(), '{"ok":true,"pong":true}\n')
check("pipelined", a.line(), '{"ok":true,"location":"attic","temp":-0.2,"hum":0.0}\n')
latest = json.loads(a.ask('{"cmd":"latest"}'))
check("latest locations", [r["location"] for r in latest["readings"]], ["attic", "living_room"])
stats = json.loads(a.ask('{"cmd":"stats"}'))
check(
    "stats",
    {k: stats[k] for k in ("ok", "client", "clients", "readings", "errors", "locations")},
    {"ok": True, "client": 1, "clients": 1, "readings": 2, "errors": 1, "locations": 2},
)
check("long line", a.ask("x" * 600), '{"ok":false,"error":"line_too_long"}\n')

# Fill every client slot; the next client is turned away.
others = [Client() for _ in range(MAX_CLIENTS - 1)]
for i, c in enumerate(others):
    stats = json.loads(c.ask('{"cmd":"stats"}'))
    check(f"client {i + 2} served", (stats["client"], stats["clients"]), (i + 2, MAX_CLIENTS))
busy = Client()
check("busy at the limit", busy.line(), '{"ok":false,"error":"busy"}\n')
check("busy then closed", busy.rest(), b"")
busy.close()

check("bye", a.ask('{"cmd":"bye"}'), '{"ok":true,"bye":true}\n')
check("closed after bye", a.rest(), b"")
a.close()
for c in others:
    c.close()

# The slots listen again: a new client gets the next id (busy took none).
b = connect_retrying(5)
stats = json.loads(b.ask('{"cmd":"stats"}'))
check("slot reused, next id", (stats["client"], stats["clients"]), (MAX_CLIENTS + 1, 1))
check("uptime counts", stats["uptime_ms"] > 0, True)
b.close()
print(f"network test: {CHECKS} checks passed")
