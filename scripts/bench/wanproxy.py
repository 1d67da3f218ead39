#!/usr/bin/env python3
"""A WAN-like TCP proxy for the bench: latency and bandwidth shaping in user space.

Kernel traffic shaping (tc/netem) is not available on the bench machines, so this proxy stands in
for a link between a bastion host and a registry in another room:

* every byte is delivered RTT/2 after it was read, in each direction;
* each direction is one shared link paced to the bandwidth: bytes of all connections queue on it
  in arrival order, as on a real bottleneck;
* a new connection costs one round trip before its first byte leaves (the TCP handshake);
* a reader does not run ahead of its link by more than QUEUE_S seconds of traffic, so a client
  feels back pressure instead of filling the proxy's memory.

It also counts connections, bytes and the HTTP/1.1 requests of the client->server stream (by
method; the parser follows Content-Length and chunked bodies, and gives up on a connection that
does not speak HTTP/1.1).

    wanproxy.py --target 127.0.0.1:5000 [--rtt-ms 20] [--bandwidth-mib 100] [--stats FILE]
        [--timeline FILE]
        prints "listening on 127.0.0.1:PORT", runs until SIGTERM/SIGINT, then writes its counts
        as JSON to FILE (or stderr), and with --timeline, per 0.5 s: seconds, MiB/s read from the
        client, requests/s, MiB/s read from the target.
    wanproxy.py --selftest [--rtt-ms 20] [--bandwidth-mib 100] [--mib 512]
        starts a proxy process in front of a local sink, measures a round trip and a raw upload
        through it (1 and 4 connections), and prints the proxy's own ceiling as JSON.

Standard library only (Python 3.11).
"""

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time

READ = 64 * 1024
QUEUE_S = 0.05


class Link:
    """One direction of the link, shared by every connection."""

    def __init__(self, bandwidth, delay):
        self.bandwidth = bandwidth
        self.delay = delay
        self.free = 0.0  # when the link has sent everything queued so far

    def schedule(self, n, now, not_before):
        start = max(now, self.free, not_before)
        self.free = start + n / self.bandwidth
        return self.free + self.delay


class HttpCounter:
    """Counts HTTP/1.1 requests in a client->server byte stream."""

    def __init__(self, stats):
        self.stats = stats
        self.buf = bytearray()
        self.state = "head"
        self.left = 0
        self.dead = False

    def feed(self, data):
        if self.dead:
            return
        mv = memoryview(data)
        i = 0
        while i < len(mv):
            if self.state in ("body", "chunk-data"):
                k = min(self.left, len(mv) - i)
                i += k
                self.left -= k
                if self.left == 0:
                    self.state = "head" if self.state == "body" else "chunk-size"
                continue
            # line-oriented states: accumulate until the terminator
            self.buf += mv[i:]
            i = len(mv)
            while not self.dead and self._line_step():
                if self.state in ("body", "chunk-data") and self.buf:
                    rest = bytes(self.buf)
                    self.buf.clear()
                    self.feed(rest)
                    return
            if len(self.buf) > 256 * 1024:
                self.dead = True

    def _line_step(self):
        if self.state == "head":
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(self.buf[:end]).decode("latin-1")
            del self.buf[: end + 4]
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self.dead = True
                return False
            self.stats["requests"][parts[0]] = self.stats["requests"].get(parts[0], 0) + 1
            tick(self.stats, 0, 1)
            length, chunked = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip() or 0)
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
            if chunked:
                self.state = "chunk-size"
            elif length > 0:
                self.state, self.left = "body", length
            return True
        if self.state == "chunk-size":
            end = self.buf.find(b"\r\n")
            if end < 0:
                return False
            size = int(bytes(self.buf[:end]).split(b";")[0].strip() or b"0", 16)
            del self.buf[: end + 2]
            if size == 0:
                self.state = "trailer"
            else:
                self.state, self.left = "chunk-data", size + 2  # data and its CRLF
            return True
        if self.state == "trailer":
            end = self.buf.find(b"\r\n")
            if end < 0:
                return False
            line = self.buf[:end]
            del self.buf[: end + 2]
            if not line:
                self.state = "head"
            return True
        return False


TICK_S = 0.5


def tick(stats, nbytes, nrequests, down=0):
    """Adds to the current TICK_S bucket of the timeline (--timeline)."""
    line = stats.get("timeline")
    if line is None:
        return
    b = int((time.monotonic() - stats["t0"]) / TICK_S)
    while len(line) <= b:
        line.append([0, 0, 0])
    line[b][0] += nbytes
    line[b][1] += nrequests
    line[b][2] += down


async def pump(reader, writer, link, not_before, stats, counter=None, key="up"):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def deliver():
        while True:
            at, data = await queue.get()
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    last = 0.0
    try:
        while True:
            data = await reader.read(READ)
            now = loop.time()
            if not data:
                queue.put_nowait((max(last, now + link.delay), None))
                break
            stats["bytes_" + key] += len(data)
            if key == "up":
                tick(stats, len(data), 0)
            else:
                tick(stats, 0, 0, len(data))
            if counter is not None:
                counter.feed(data)
            last = link.schedule(len(data), now, not_before)
            queue.put_nowait((last, data))
            ahead = link.free - now
            if ahead > QUEUE_S:
                await asyncio.sleep(ahead - QUEUE_S)
    except (ConnectionError, OSError):
        queue.put_nowait((0.0, None))
    try:
        await sender
    except (ConnectionError, OSError):
        pass


async def serve(args):
    host, port = args.target.rsplit(":", 1)
    up = Link(args.bandwidth_mib * 1024 * 1024, args.rtt_ms / 2000)
    down = Link(args.bandwidth_mib * 1024 * 1024, args.rtt_ms / 2000)
    stats = {"connections": 0, "bytes_up": 0, "bytes_down": 0, "requests": {}}
    if args.timeline:
        stats["timeline"], stats["t0"] = [], time.monotonic()
    loop = asyncio.get_running_loop()

    async def handle(creader, cwriter):
        stats["connections"] += 1
        # The handshake: the client's first byte leaves one round trip after it connected.
        not_before = loop.time() + args.rtt_ms / 1000
        try:
            sreader, swriter = await asyncio.open_connection(host, int(port))
        except OSError:
            cwriter.close()
            return
        await asyncio.gather(
            pump(creader, swriter, up, not_before, stats, HttpCounter(stats), "up"),
            pump(sreader, cwriter, down, not_before, stats, None, "down"),
        )
        for w in (swriter, cwriter):
            w.close()

    lhost, lport = args.listen.rsplit(":", 1)
    server = await asyncio.start_server(handle, lhost, int(lport), backlog=1024)
    addr = server.sockets[0].getsockname()
    print(f"listening on {addr[0]}:{addr[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    stats["requests_total"] = sum(stats["requests"].values())
    if args.timeline:
        with open(args.timeline, "w") as f:
            for i, (nbytes, nreq, down) in enumerate(stats.pop("timeline")):
                f.write(f"{i * TICK_S:.1f} {nbytes / 2**20 / TICK_S:.1f} {nreq / TICK_S:.0f} "
                        f"{down / 2**20 / TICK_S:.1f}\n")
        del stats["t0"]
    out = json.dumps(stats)
    if args.stats:
        with open(args.stats, "w") as f:
            f.write(out + "\n")
    else:
        print(out, file=sys.stderr)


async def selftest(args):
    """Measures what the proxy itself can carry: a round trip and raw uploads through it."""
    async def sink(reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                left = int(line)
                while left > 0:
                    data = await reader.read(min(left, 1 << 20))
                    if not data:
                        break
                    left -= len(data)
                writer.write(b"ok\n")
                await writer.drain()
        except (asyncio.CancelledError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    def start_proxy(bandwidth):
        return subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--target", f"127.0.0.1:{port}",
             "--rtt-ms", str(args.rtt_ms), "--bandwidth-mib", str(bandwidth)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    async def measure(proxy, total, parallel):
        line = await asyncio.get_running_loop().run_in_executor(None, proxy.stdout.readline)
        phost, pport = line.strip().rsplit(" ", 1)[-1].rsplit(":", 1)

        async def exchange(reader, writer, payload):
            t0 = time.monotonic()
            writer.write(f"{len(payload)}\n".encode())
            writer.write(payload)
            await writer.drain()
            await reader.readline()
            return time.monotonic() - t0

        async def upload(total):
            reader, writer = await asyncio.open_connection(phost, int(pport))
            first = await exchange(reader, writer, b"\0")  # handshake + one round trip
            rtt = await exchange(reader, writer, b"\0")  # one round trip
            chunk = b"\0" * (1 << 20)
            t0 = time.monotonic()
            writer.write(f"{total}\n".encode())
            left = total
            while left > 0:
                n = min(left, len(chunk))
                writer.write(chunk[:n])
                await writer.drain()
                left -= n
            await reader.readline()
            took = time.monotonic() - t0
            writer.close()
            return first, rtt, took

        t0 = time.monotonic()
        results = await asyncio.gather(*(upload(total // parallel) for _ in range(parallel)))
        return results[0][0], results[0][1], time.monotonic() - t0

    total = args.mib << 20
    mib = total / (1 << 20)
    out = {"rtt_ms": args.rtt_ms, "bandwidth_mib": args.bandwidth_mib}
    for name, bandwidth, parallel in (("one_conn", args.bandwidth_mib, 1),
                                      ("four_conn", args.bandwidth_mib, 4),
                                      ("unshaped", 1e6, 4)):
        proxy = start_proxy(bandwidth)
        try:
            first, rtt, took = await measure(proxy, total, parallel)
        finally:
            proxy.send_signal(signal.SIGTERM)
            proxy.wait()
        if name == "one_conn":
            out["first_exchange_ms"] = round(first * 1000, 1)
            out["exchange_ms"] = round(rtt * 1000, 1)
        # the upload includes one round trip for its final reply
        out[name + "_mib_s"] = round(mib / max(took - args.rtt_ms / 1000, 1e-6), 1)
    server.close()
    out["ceiling_mib_s"] = max(out["one_conn_mib_s"], out["four_conn_mib_s"])
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", help="host:port to forward to")
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--rtt-ms", type=float, default=20.0)
    p.add_argument("--bandwidth-mib", type=float, default=100.0, help="MiB/s per direction")
    p.add_argument("--stats", help="write the counts here as JSON at exit")
    p.add_argument("--timeline", help="write per 0.5 s the client's MiB/s and requests/s here at exit")
    p.add_argument("--selftest", action="store_true")
    p.add_argument("--mib", type=int, default=512, help="--selftest upload size")
    args = p.parse_args()
    if args.selftest:
        asyncio.run(selftest(args))
    elif args.target:
        asyncio.run(serve(args))
    else:
        p.error("--target or --selftest is required")


if __name__ == "__main__":
    main()
