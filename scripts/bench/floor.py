#!/usr/bin/env python3
"""The bench's floor: the least a registry client can do to move the same images.

A minimal registry client over N keep-alive HTTP/1.1 connections, driven by OCI image layouts
(the extracted package; each image is named by its `org.opencontainers.image.ref.name`):

    floor.py push --to HOST[:PORT] [--conns 8] LAYOUT...
        each unique blob once: POST + PUT with the file as body (sendfile), largest first, into
        the first repository that uses it; a cross-repository mount for every other repository;
        manifests as soon as their repository holds their blobs, image indexes (tags) last.
        No HEADs, no retries, no client-side hashing: the registry verifies every digest.
    floor.py pull --from HOST[:PORT] LAYOUT...
        GET every manifest and each unique blob once, bodies discarded (registry egress).
    floor.py copy --from HOST[:PORT] --to HOST[:PORT] LAYOUT...
        registry -> registry: each unique blob streamed from a GET into a POST + PUT, mounts and
        manifests as in push.

Prints one JSON line: seconds, requests (by method), bytes moved. Plain HTTP only, no auth: it is
for the bench's loopback registries. Standard library only (Python 3.11).
"""

import argparse
import asyncio
import json
import os
import sys
import time
from urllib.parse import urlsplit

CHUNK = 1 << 20


class Plan:
    """What the layouts hold: blobs, manifests and tags per repository."""

    def __init__(self, layouts):
        self.blobs = {}  # digest -> (size, path)
        self.first_repo = {}  # digest -> repository that receives the upload
        self.repo_blobs = {}  # repository -> set of blob digests
        self.manifests = []  # (repository, reference, media type, path, [child digests])
        for layout in layouts:
            with open(os.path.join(layout, "index.json")) as f:
                top = json.load(f)
            for desc in top["manifests"]:
                ref = desc["annotations"]["org.opencontainers.image.ref.name"]
                name, _, tag = ref.rpartition(":")
                repo = name.split("/", 1)[1]  # without the registry host
                self._image(layout, repo, tag, desc)

    def _path(self, layout, digest):
        return os.path.join(layout, "blobs", *digest.split(":", 1))

    def _blob(self, layout, repo, desc):
        d = desc["digest"]
        self.blobs.setdefault(d, (desc["size"], self._path(layout, d)))
        self.first_repo.setdefault(d, repo)
        self.repo_blobs.setdefault(repo, set()).add(d)

    def _image(self, layout, repo, tag, desc):
        path = self._path(layout, desc["digest"])
        with open(path) as f:
            doc = json.load(f)
        children = []
        for child in doc.get("manifests", []):
            cpath = self._path(layout, child["digest"])
            with open(cpath) as f:
                manifest = json.load(f)
            for b in [manifest["config"]] + manifest["layers"]:
                self._blob(layout, repo, b)
            self.manifests.append((repo, child["digest"], child["mediaType"], cpath, []))
            children.append(child["digest"])
        if "layers" in doc:  # a single-platform image
            for b in [doc["config"]] + doc["layers"]:
                self._blob(layout, repo, b)
        self.manifests.append((repo, tag, desc["mediaType"], path, children))


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host, stats):
        self.host = host
        self.stats = stats
        self.reader = self.writer = None

    async def _open(self):
        h, _, p = self.host.partition(":")
        self.reader, self.writer = await asyncio.open_connection(h, int(p or 80))

    async def send(self, method, path, headers=(), body=None, length=0):
        """Sends a request; body is None, bytes, a file path or an async byte iterator."""
        if self.writer is None:
            await self._open()
        self.stats["requests"][method] = self.stats["requests"].get(method, 0) + 1
        if isinstance(body, bytes):
            length = len(body)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {length}"]
        lines += [f"{k}: {v}" for k, v in headers]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        if isinstance(body, bytes):
            self.writer.write(body)
        elif isinstance(body, str):
            await self.writer.drain()
            with open(body, "rb") as f:
                await asyncio.get_running_loop().sendfile(self.writer.transport, f, 0, length)
        elif body is not None:
            async for chunk in body:
                self.writer.write(chunk)
                await self.writer.drain()
        await self.writer.drain()
        self.stats["bytes_up"] += length

    async def response(self, method, want, sink=None):
        """Reads the response head; the body goes to sink (an async callable) or is discarded."""
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        headers = {}
        while True:
            line = (await self.reader.readline()).decode("latin-1").strip()
            if not line:
                break
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = 0 if method == "HEAD" else int(headers.get("content-length", 0))
        left = length
        while left > 0:
            data = await self.reader.read(min(left, CHUNK))
            if not data:
                raise ConnectionError(f"{self.host}: connection closed in a response body")
            left -= len(data)
            if sink is not None:
                await sink(data)
        self.stats["bytes_down"] += length
        if headers.get("connection", "").lower() == "close":
            self.writer.close()
            self.writer = None
        if status not in want:
            raise RuntimeError(f"{self.host}: {method} answered {status} {status_line!r}")
        return status, headers

    async def call(self, method, path, want, headers=(), body=None, length=0):
        await self.send(method, path, headers, body, length)
        return await self.response(method, want)


async def run(args):
    plan = Plan(args.layouts)
    stats = {"requests": {}, "bytes_up": 0, "bytes_down": 0}
    t0 = time.monotonic()
    if args.mode == "pull":
        await pull(args, plan, stats)
    else:
        await push(args, plan, stats)
    stats["seconds"] = round(time.monotonic() - t0, 3)
    stats["requests_total"] = sum(stats["requests"].values())
    stats["blobs"] = len(plan.blobs)
    stats["blob_bytes"] = sum(s for s, _ in plan.blobs.values())
    stats["images"] = sum(1 for m in plan.manifests if not m[1].startswith("sha256:"))
    print(json.dumps(stats))


async def pull(args, plan, stats):
    jobs = asyncio.Queue()
    for repo, ref, mt, _, _ in plan.manifests:
        jobs.put_nowait(("GET", f"/v2/{repo}/manifests/{ref}", [("Accept", mt)]))
    for d, (size, _) in sorted(plan.blobs.items(), key=lambda kv: -kv[1][0]):
        jobs.put_nowait(("GET", f"/v2/{plan.first_repo[d]}/blobs/{d}", []))

    async def worker():
        conn = Conn(args.source, stats)
        while not jobs.empty():
            method, path, headers = jobs.get_nowait()
            await conn.call(method, path, (200,), headers)

    await asyncio.gather(*(worker() for _ in range(args.conns)))


async def push(args, plan, stats):
    """Uploads largest first; a mount or manifest is queued the moment what it needs is there."""
    queue = asyncio.PriorityQueue()
    seq = [0]

    def put(priority, job):
        seq[0] += 1
        queue.put_nowait((priority, seq[0], job))

    # per repository: blobs not yet present, and manifests waiting for them
    missing = {repo: set(ds) for repo, ds in plan.repo_blobs.items()}
    waiting_mounts = {}  # digest -> repositories to mount it into
    for repo, ds in plan.repo_blobs.items():
        for d in ds:
            if plan.first_repo[d] != repo:
                waiting_mounts.setdefault(d, []).append(repo)
    leaves = {}  # repository -> child manifests not yet pushed
    indexes = {}  # repository -> [(tag manifest)]
    platform_manifests = {}
    for m in plan.manifests:
        repo, ref = m[0], m[1]
        if m[4]:
            indexes.setdefault(repo, []).append(m)
        else:
            platform_manifests.setdefault(repo, []).append(m)
    for repo, ms in platform_manifests.items():
        leaves[repo] = len(ms)
    total = len(plan.blobs) + sum(len(v) for v in waiting_mounts.values()) + len(plan.manifests)
    done = [0]
    finished = asyncio.Event()

    def repo_ready(repo):
        for m in platform_manifests.get(repo, []):
            put((0, 0), ("manifest", m))
        if not platform_manifests.get(repo):
            for m in indexes.get(repo, []):
                put((0, 0), ("manifest", m))

    def present(repo, d):
        missing[repo].discard(d)
        if not missing[repo]:
            repo_ready(repo)

    def complete():
        done[0] += 1
        if done[0] == total:
            finished.set()

    for d, (size, _) in plan.blobs.items():
        put((2, -size), ("upload", d))

    async def blob_body(src, d):
        """For copy: a GET on the source whose body is streamed into the upload."""
        size = plan.blobs[d][0]
        await src.send("GET", f"/v2/{plan.first_repo[d]}/blobs/{d}")
        status_line = await src.reader.readline()
        if int(status_line.split()[1]) != 200:
            raise RuntimeError(f"{args.source}: GET {d} answered {status_line!r}")
        while (await src.reader.readline()).strip():
            pass
        left = size
        while left > 0:
            data = await src.reader.read(min(left, CHUNK))
            if not data:
                raise ConnectionError(f"{args.source}: closed in the body of {d}")
            left -= len(data)
            yield data
        stats["bytes_down"] += size

    async def worker():
        conn = Conn(args.dest, stats)
        src = Conn(args.source, stats) if args.mode == "copy" else None
        while not finished.is_set():
            get = asyncio.create_task(queue.get())
            stop = asyncio.create_task(finished.wait())
            await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not get.done():
                get.cancel()
                stop.cancel()
                return
            stop.cancel()
            _, _, (kind, arg) = get.result()
            if kind == "upload":
                d = arg
                repo = plan.first_repo[d]
                _, h = await conn.call("POST", f"/v2/{repo}/blobs/uploads/", (202,))
                loc = urlsplit(h["location"])
                target = loc.path + "?" + (loc.query + "&" if loc.query else "") + f"digest={d}"
                size, path = plan.blobs[d]
                body = blob_body(src, d) if src else path
                await conn.call("PUT", target, (201,), [("Content-Type", "application/octet-stream")],
                                body, size)
                present(repo, d)
                for other in waiting_mounts.get(d, []):
                    put((1, 0), ("mount", (other, d)))
            elif kind == "mount":
                repo, d = arg
                await conn.call("POST", f"/v2/{repo}/blobs/uploads/?mount={d}&from={plan.first_repo[d]}",
                                (201,))
                present(repo, d)
            else:
                repo, ref, mt, path, children = arg
                with open(path, "rb") as f:
                    raw = f.read()
                await conn.call("PUT", f"/v2/{repo}/manifests/{ref}", (201,),
                                [("Content-Type", mt)], raw)
                if not children:
                    leaves[repo] -= 1
                    if leaves[repo] == 0:
                        for m in indexes.get(repo, []):
                            put((0, 0), ("manifest", m))
            complete()

    await asyncio.gather(*(worker() for _ in range(args.conns)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["push", "pull", "copy"])
    p.add_argument("--to", dest="dest", help="destination registry host:port (push, copy)")
    p.add_argument("--from", dest="source", help="source registry host:port (pull, copy)")
    p.add_argument("--conns", type=int, default=8, help="keep-alive connections (default 8)")
    p.add_argument("layouts", nargs="+", help="OCI image layout directories")
    args = p.parse_args()
    if args.mode in ("push", "copy") and not args.dest:
        p.error("--to is required")
    if args.mode in ("pull", "copy") and not args.source:
        p.error("--from is required")
    try:
        asyncio.run(run(args))
    except (RuntimeError, ConnectionError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
