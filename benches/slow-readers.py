#!/usr/bin/env python3
"""Kernel and server memory pinned by slow readers (loopback only).

    python3 benches/slow-readers.py BINARY [CLIENTS]

Starts BINARY (an `envhub`) on 127.0.0.1, stores 64 locations (so that a
`latest` reply is ~4.5 KiB), then opens CLIENTS (default 50) connections that
each pipeline 2,000 `latest` requests and then read one byte per second.
After 3 s it prints, per slow reader: the server's RSS growth, the kernel
memory of the server's sockets (`ss -tm`: send queue `w` + receive `r`), and
the growth of all TCP memory (/proc/net/sockstat `mem`, pages, both ends;
other work on the machine adds noise). Then it waits 8 s more and counts the
readers the server has reset. Bounded: 12 s of load, loopback only.
"""
import socket
import subprocess
import sys
import time

binary = sys.argv[1]
clients = int(sys.argv[2]) if len(sys.argv) > 2 else 50


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tcp_mem_pages():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                return int(parts[parts.index("mem") + 1])
    return 0


def server_skmem(port):
    out = subprocess.run(["ss", "-tmnH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    total = 0
    for chunk in out.split("skmem:(")[1:]:
        fields = chunk.split(")")[0].split(",")
        for f in fields:
            for key in ("w", "r"):
                if f.startswith(key) and f[len(key):].isdigit():
                    total += int(f[len(key):])
    return total


srv = subprocess.Popen([binary, "--bind", "127.0.0.1:0", "--max-clients", "1024"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    line = srv.stdout.readline()
    port = int(line.strip().rsplit(":", 1)[1])
    filler = socket.create_connection(("127.0.0.1", port))
    f = filler.makefile("rb")
    for i in range(64):
        filler.sendall(b'{"location":"room_with_a_long_name_%02d","temp":21.5,"hum":40}\n' % i)
        f.readline()
    time.sleep(0.3)
    rss0, mem0 = rss_kib(srv.pid), tcp_mem_pages()
    burst = b'{"cmd":"latest"}\n' * 2000
    slow = []
    for _ in range(clients):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        try:
            s.send(burst)
        except BlockingIOError:
            pass
        slow.append(s)
    start = time.time()
    while time.time() - start < 3:
        for s in slow:
            try:
                s.recv(1)
            except (BlockingIOError, ConnectionError):
                pass
        time.sleep(1)
    rss1, mem1, sk = rss_kib(srv.pid), tcp_mem_pages(), server_skmem(port)
    print(f"{clients} slow readers after 3 s: server RSS +{(rss1 - rss0) / clients:.1f} KiB each; "
          f"server sockets' kernel memory {sk / clients / 1024:.1f} KiB each; "
          f"all TCP memory +{(mem1 - mem0) * 4 / clients:.1f} KiB each")
    reset = 0
    while time.time() - start < 11:
        time.sleep(1)
    for s in slow:
        try:
            while s.recv(65536):
                pass
        except BlockingIOError:
            pass
        except ConnectionError:
            reset += 1
    print(f"reset by the server within 11 s: {reset} of {clients}")
finally:
    srv.terminate()
    srv.wait(timeout=5)
