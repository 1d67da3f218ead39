#!/usr/bin/env python3
"""The bench's table: medians per measurement, ratios, floors and what bounds each row.

    report.py RESULTS CEILING_JSON RTT_MS BANDWIDTH_MIB RUNS VIOLET

RESULTS holds one line of key=value pairs per measurement (scripts/lib/bench.sh `measure`).
Standard library only.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time


def load(path):
    runs = {}
    with open(path) as f:
        for line in f:
            kv = dict(p.split("=", 1) for p in line.split())
            runs.setdefault(kv.pop("key"), []).append(kv)
    return runs


class Row:
    """Medians of one key's runs (failed runs left out; counted in `failed`)."""

    def __init__(self, runs):
        ok = [r for r in runs if "failed" not in r]
        self.failed = len(runs) - len(ok)
        self.n = len(ok)
        med = lambda k: statistics.median(float(r.get(k, 0)) for r in ok) if ok else None
        self.wall = med("wall")
        self.rss_mb = max(float(r["rss"]) for r in ok) / 1024 if ok else None
        tck = float(ok[0]["tck"]) if ok else 100.0
        self.cpu = med("cpu")
        self.reg = med("reg") / tck if ok else None
        self.src = med("src") / tck if ok else None
        self.pcpu = med("pcpu") / tck if ok and "pcpu" in ok[0] else None
        # busy share of all CPU time during the run, in cores: robust to the wall clock of short runs
        self.machine = (statistics.median(float(r["mbusy"]) / max(float(r["mall"]), 1.0) for r in ok)
                        * (os.cpu_count() or 1) if ok and "mall" in ok[0] else None)
        self.req = med("req")
        self.head = med("head")
        self.conns = med("conns") if ok and "conns" in ok[0] else None
        self.bytes = med("bytes")
        self.scale = None
        if ok and "scale" in ok[0]:
            a, b = ok[0]["scale"].split("/")
            self.scale = float(a) / float(b)
            self.wall *= self.scale


def fmt_s(x):
    if x is None:
        return "-"
    return f"{x:.2f} s" if x < 100 else f"{x:.0f} s"


def bound(row, rtt_ms=None, wire_floor=None, who="violet", registry_floor=None):
    """What bounds a row: the numbers, then the verdict. `registry_floor`: the seconds the same
    registry needs to ingest the same blobs on loopback (floor.py), for a WAN row."""
    if row is None or row.wall is None or row.wall <= 0:
        return "-"
    cores = {who: row.cpu / row.wall, "registry": row.reg / row.wall}
    if row.src:
        cores["source registry"] = row.src / row.wall
    if row.pcpu:
        cores["proxy"] = row.pcpu / row.wall
    parts = [f"{k} {v:.2f} cores" for k, v in cores.items()]
    others = None
    if row.machine is not None:
        machine = row.machine
        others = max(0.0, machine - sum(cores.values()))
        parts.append(f"machine {machine:.2f} cores busy (others {others:.2f})")
    verdict = None
    if rtt_ms is not None:
        rtts = row.req * rtt_ms / 1000
        parts.append(f"{row.req:.0f} req x {rtt_ms:g} ms = {rtts:.0f} s, {rtts / row.wall:.1f} in flight")
        if wire_floor:
            share = wire_floor / row.wall
            parts.append(f"bytes/bandwidth {100 * share:.0f} % of wall")
            if share >= 0.8:
                verdict = "bandwidth"
        if registry_floor:
            share = registry_floor / row.wall
            parts.append(f"the registry's loopback floor {100 * share:.0f} % of wall")
            if verdict is None and share >= 0.8 and share >= (wire_floor or 0) / row.wall:
                verdict = "the registry (its own ingest time on loopback)"
        if verdict is None:
            verdict = "requests x RTT"
    if verdict is None:
        busy = sum(cores.values())
        top, top_cores = max(cores.items(), key=lambda kv: kv[1])
        if busy >= 1.7:
            verdict = f"both cores busy ({top} most)"
        elif others is not None and busy + others >= 1.7:
            verdict = f"both cores busy, {others:.1f} by other processes"
        elif top_cores >= 0.85:
            verdict = f"{top} CPU"
        else:
            verdict = "waiting (cores idle: latency, serialization)"
    return f"**{verdict}**: " + ", ".join(parts)


def main():
    results, ceiling_path, rtt_ms, bw_mib, runs, violet = sys.argv[1:7]
    rtt_ms, bw_mib = float(rtt_ms), float(bw_mib)
    data = load(results)
    rows = {k: Row(v) for k, v in data.items()}
    ceiling = None
    if os.path.exists(ceiling_path):
        with open(ceiling_path) as f:
            ceiling = json.load(f)
    get = rows.get

    def version(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0].strip()
        except (OSError, IndexError):
            return "?"

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores ({cpu}), "
          f"{platform.system()} {platform.release()}; {version([violet, 'version'])}; "
          f"{version(['skopeo', '--version'])}; {version(['docker-registry', '--version'])}; "
          f"medians of {runs} run(s); plain HTTP, a fresh registry per run.")
    wire = None
    if ceiling:
        eff = min(bw_mib, ceiling["ceiling_mib_s"])
        print(f"WAN profile: RTT {rtt_ms:g} ms, {bw_mib:g} MiB/s per direction; the proxy's own ceiling "
              f"{ceiling['ceiling_mib_s']} MiB/s shaped (one connection {ceiling['one_conn_mib_s']}, four "
              f"{ceiling['four_conn_mib_s']}; unshaped {ceiling['unshaped_mib_s']} MiB/s), a round trip "
              f"measured {ceiling['exchange_ms']} ms: the WAN floor is bytes / {eff:g} MiB/s.")
        wb = get("wan-violet") or get("wan-floor-client") or get("wanmem-violet")
        if wb:
            wire = wb.bytes / (eff * 2**20)
    print()
    print("| workload | violet | comparison | ratio | floor | violet / floor | peak RSS | requests (HEAD) | what bounds it |")
    print("|---|---|---|---|---|---|---|---|---|")

    def line(name, v, cmp_name, c, floor_name, floor, rtt=None, wire_floor=None, note="", who="violet",
             registry_floor=None):
        if v is None and c is None:
            return
        vw = v.wall if v else None
        cw = c.wall if c else None
        ratio = f"{vw / cw:.2f}x" if vw and cw else "-"
        fl = floor if isinstance(floor, float) else (floor.wall if floor else None)
        to_floor = f"{vw / fl:.2f}x" if vw and fl else "-"
        cmp_txt = f"{fmt_s(cw)} {cmp_name}" if c else "-"
        if c and c.scale:
            cmp_txt = f"~{fmt_s(cw)} {cmp_name} (est. from a subset, x{c.scale:.1f})"
        if c and v and c.n < v.n:
            cmp_txt += f" ({c.n} run{'s' if c.n > 1 else ''})"
        fl_txt = f"{fmt_s(fl)} {floor_name}" if fl else "-"
        if floor is not None and not isinstance(floor, float) and floor.req:
            fl_txt += f", {floor.req:.0f} req"
        rss = f"{v.rss_mb:.0f} MB" if v else "-"
        req = f"{v.req:.0f} ({v.head:.0f})" if v else "-"
        if v and v.conns is not None:
            req += f", {v.conns:.0f} conns"
        fails = ""
        for r, tool in ((v, "violet"), (c, "comparison")):
            if r and r.failed:
                fails += f" ({r.failed} {tool} run(s) FAILED)"
        print(f"| {name}{note}{fails} | {fmt_s(vw)} | {cmp_txt} | {ratio} | {fl_txt} | {to_floor} | {rss} | {req} | "
              f"{bound(v, rtt, wire_floor, who, registry_floor)} |")

    g = get("gib-tar-violet")
    if g:
        mib = g.bytes / 2**20
        line(f"{mib:.0f} MiB, 1 image x 2 platforms, `.tar`", g, "skopeo copy --all", get("gib-tar-skopeo"),
             "floor.py push", get("gib-floor"))
        line(f"{mib:.0f} MiB `.tgz`", get("gib-tgz-violet"), "tar xzf + skopeo", get("gib-tgz-skopeo"),
             "floor.py push (of the extracted layout)", get("gib-floor"))
        line(f"{mib:.0f} MiB re-push, all present", get("gib-again-violet"), "", None, "", None)
    for key, what in (("gib-bigtgz-violet", "`.tgz`"), ("gib-bigtar-violet", "`.tar`")):
        r = get(key)
        if r:
            line(f"2 x {r.bytes / 2**21:.0f} MiB layers, {what} (RSS)", r, "", None, "", None)
    c = (get("core-violet") or get("wan-violet") or get("wanmem-violet") or get("mirror-violet")
         or get("package-violet"))
    if c:
        gib = c.bytes / 2**30
        line(f"core-shaped ({gib:.2f} GiB), loopback", get("core-violet"), "skopeo loop", get("core-skopeo"),
             "floor.py push", get("core-floor"))
        line("core-shaped re-push, loopback", get("core-again-violet"), "", None, "", None)
        # The WAN push cannot beat the registry either: its loopback ingest time for the same blobs,
        # measured in the same run (the core row's floor, or the wan workload's own).
        reg = get("core-floor") or get("wan-registry-floor")
        reg_s = reg.wall if reg else None
        line(f"core-shaped, WAN", get("wan-violet"), "skopeo loop", get("wan-skopeo"), "bytes/bandwidth",
             wire, rtt=rtt_ms, wire_floor=wire, registry_floor=reg_s)
        if wire and reg_s:
            line("core-shaped, WAN, against the higher floor", get("wan-violet"), "", None,
                 "max(bytes/bandwidth, the registry's loopback floor)", max(wire, reg_s), rtt=rtt_ms,
                 wire_floor=wire, registry_floor=reg_s)
        line("core-shaped, WAN: floor.py push in the violet column", get("wan-floor-client"), "", None,
             "bytes/bandwidth", wire, rtt=rtt_ms, wire_floor=wire, who="floor.py", registry_floor=reg_s)
        line("core-shaped re-push, WAN", get("wan-again-violet"), "", None, "", None, rtt=rtt_ms)
        # The same push to a registry whose storage is in memory (tmpfs): what the link and the client
        # reach when this machine's disk under the registry is not what bounds the push.
        mem = get("wanmem-registry-floor")
        mem_s = mem.wall if mem else None
        line("core-shaped, WAN, registry storage in memory", get("wanmem-violet"), "", None, "bytes/bandwidth",
             wire, rtt=rtt_ms, wire_floor=wire, registry_floor=mem_s)
        if wire and mem_s:
            line("core-shaped, WAN, registry storage in memory, against the higher floor", get("wanmem-violet"),
                 "", None, "max(bytes/bandwidth, the in-memory registry's loopback floor)", max(wire, mem_s),
                 rtt=rtt_ms, wire_floor=wire, registry_floor=mem_s)
        line("mirror registry -> registry, loopback", get("mirror-violet"), "skopeo loop", get("mirror-skopeo"),
             "floor.py copy", get("mirror-floor"))
        line("package registry -> `.tgz`, loopback", get("package-violet"), "skopeo loop + tar czf",
             get("package-skopeo"), "floor.py pull (egress only)", get("package-floor"))
        # Reading from a source behind the WAN proxy (--far-source): against bytes / the proxy's ceiling.
        for key, what in (("farmirror-violet", "mirror"), ("farpackage-violet", "package")):
            r = get(key)
            if r and ceiling:
                far_wire = r.bytes / (min(bw_mib, ceiling["ceiling_mib_s"]) * 2**20)
                line(f"{what}, source behind the WAN proxy", r, "", None, "bytes/bandwidth", far_wire,
                     rtt=rtt_ms, wire_floor=far_wire)
    print()
    print("Targets (issue #13): core loopback <= 1.05x floor; WAN <= 1.2x bytes/bandwidth; 1 GiB `.tar` <= 0.55x "
          "skopeo (<= 1.1x floor), `.tgz` <= 0.45x; re-push core <= 1 s loopback, <= 3 s WAN; mirror <= 0.5x "
          "skopeo; package <= 0.5x skopeo + tar; peak RSS <= 64 MB.")
    print("Requests are what the registries answered (their access log), for violet; the floor's count follows "
          "its time. \"cores\" are CPU seconds / wall seconds of the run.")


if __name__ == "__main__":
    main()
