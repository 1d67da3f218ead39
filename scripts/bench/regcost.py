#!/usr/bin/env python3
"""What one request of each kind costs the registry, in its own CPU time: the reason a push of
thousands of small blobs is bound by the registry and not by the client or the link.

Usage (a registry started by scripts/lib/registry.sh):
  . scripts/lib/registry.sh; h=$(registry_start /tmp/rc)
  python3 scripts/bench/regcost.py --host "$h" --pid "$(cat /tmp/rc/registry.pid)" [--n 2000]
  registry_stop /tmp/rc

Each kind is sent N times over 16 keep-alive connections; the registry's CPU (utime + stime from
/proc/PID/stat) is read before and after. The client runs on the same machine, so the wall times
are only indicative; the CPU per request is the registry's alone.
"""
import argparse
import hashlib
import http.client
import os
import threading
import time


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", required=True, help="registry host:port (plain HTTP)")
    ap.add_argument("--pid", type=int, required=True, help="the registry's process id")
    ap.add_argument("--n", type=int, default=2000, help="requests of each kind (default 2000)")
    ap.add_argument("--conns", type=int, default=16, help="keep-alive connections (default 16)")
    a = ap.parse_args()

    def request(conn, method, url, body=None, headers=None):
        conn.request(method, url, body=body, headers=headers or {})
        r = conn.getresponse()
        r.read()
        return r

    def blob(j):
        b = j.to_bytes(8, "big") + os.urandom(1000)
        return b, "sha256:" + hashlib.sha256(b).hexdigest()

    uploaded = {}

    def head(conn, j):
        request(conn, "HEAD", f"/v2/r{j % 50}/blobs/sha256:{j:064x}")

    def session(conn, j):
        request(conn, "POST", f"/v2/r{j % 50}/blobs/uploads/")

    def upload(conn, j):
        b, d = blob(j)
        r = request(conn, "POST", f"/v2/r{j % 50}/blobs/uploads/")
        loc = r.getheader("Location")
        loc = loc.split("://", 1)[1].split("/", 1)[1] if "://" in loc else loc.lstrip("/")
        sep = "&" if "?" in loc else "?"
        r = request(conn, "PUT", f"/{loc}{sep}digest={d}", b,
                    {"Content-Type": "application/octet-stream", "Content-Length": str(len(b))})
        if r.status != 201:
            raise SystemExit(f"upload answered {r.status}")
        uploaded[j] = d

    def mount(conn, j):
        r = request(conn, "POST", f"/v2/m{j % 50}/blobs/uploads/?mount={uploaded[j]}&from=r{j % 50}")
        if r.status != 201:
            raise SystemExit(f"mount answered {r.status}")

    def run(name, fn, per):
        c0, t0 = cpu_seconds(a.pid), time.time()

        def worker(i):
            conn = http.client.HTTPConnection(a.host)
            for j in range(i, a.n, a.conns):
                fn(conn, j)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu = cpu_seconds(a.pid) - c0
        print(f"| {name} | {per} | {cpu / a.n * 1e3:.2f} ms | {a.n} in {time.time() - t0:.1f} s |")

    print("| request | requests | registry CPU each | wall (indicative) |")
    print("|---|---|---|---|")
    run("`HEAD` of a missing blob", head, 1)
    run("`POST` opening an upload session", session, 1)
    run("1 KiB blob upload (`POST` + `PUT`)", upload, 2)
    run("cross-repository mount (`POST ?mount=&from=`, 201)", mount, 1)


if __name__ == "__main__":
    main()
