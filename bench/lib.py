#!/usr/bin/env python3
"""Helpers for bench/run (standard library only).

    lib.py ports N                      N free loopback TCP ports, one a line
    lib.py record OUT.jsonl [--wrk F | --h2load F] key=value...
                                        parse a load tool's output, derive
                                        per-CPU figures, append one JSON line
    lib.py report RESULTS_DIR [--docs BENCHMARKS.md --chart PNG]
                                        medians, ratios, table, chart, JSON line
    lib.py criterion TARGET_DIR         markdown table of criterion's latest medians
"""

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys

PROXIES = ["shoal", "nginx", "haproxy"]
LABEL = {"shoal": "shoal", "nginx": "nginx", "haproxy": "HAProxy"}


# --------------------------------------------------------------------------
# ports


def cmd_ports(n):
    socks = []
    for _ in range(int(n)):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    for s in socks:
        print(s.getsockname()[1])
    for s in socks:
        s.close()


# --------------------------------------------------------------------------
# parsing load tool output

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        return None
    return float(m.group(1)) * UNIT_MS[m.group(2)]


def parse_wrk(text):
    out = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if m:
        out["requests"] = int(m.group(1))
        out["load_duration_s"] = float(m.group(2)) * UNIT_MS[m.group(3)] / 1000.0
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, text, re.M)
        if m:
            out["p%s_ms" % pct] = to_ms(m.group(1))
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = {
            "connect": int(m.group(1)),
            "read": int(m.group(2)),
            "write": int(m.group(3)),
            "timeout": int(m.group(4)),
        }
        errors += int(m.group(1)) + int(m.group(3)) + int(m.group(4))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["non_2xx"] = int(m.group(1))
        errors += int(m.group(1))
    out["errors"] = errors
    return out


def parse_h2load(text):
    out = {}
    m = re.search(r"finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", text)
    if m:
        out["load_duration_s"] = float(m.group(1)) * UNIT_MS[m.group(2)] / 1000.0
        out["rps"] = float(m.group(3))
    m = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout",
        text,
    )
    if m:
        out["requests"] = int(m.group(4))
        out["errors"] = int(m.group(5)) + int(m.group(6)) + int(m.group(7))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if m:
        out["non_2xx"] = int(m.group(3)) + int(m.group(4))
        out["errors"] = out.get("errors", 0) + out["non_2xx"]
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if m:
        out["min_ms"] = to_ms(m.group(1))
        out["max_ms"] = to_ms(m.group(2))
        out["mean_ms"] = to_ms(m.group(3))
    return out


def parse_perf_stat(path):
    """perf stat -x, output: {"syscalls": n, "context_switches": n, "read": n, ...}"""
    out = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) < 3 or not parts[0].replace(".", "").isdigit():
                continue
            ev = parts[2]
            if ev == "raw_syscalls:sys_enter":
                key = "syscalls"
            elif ev == "context-switches":
                key = "context_switches"
            elif ev.startswith("syscalls:sys_enter_"):
                key = ev[len("syscalls:sys_enter_"):]
            else:
                continue
            out[key] = float(parts[0])
    return out


def value(text):
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def cmd_record(args):
    out_path = args[0]
    rec = {}
    parsed = {}
    perf = {}
    i = 1
    while i < len(args):
        a = args[i]
        if a == "--perf-stat":
            perf = parse_perf_stat(args[i + 1])
            i += 2
            continue
        if a in ("--wrk", "--h2load"):
            with open(args[i + 1], encoding="utf-8", errors="replace") as f:
                text = f.read()
            parsed = parse_wrk(text) if a == "--wrk" else parse_h2load(text)
            i += 2
            continue
        k, _, v = a.partition("=")
        rec[k] = value(v)
        i += 1
    rec.update(parsed)
    if perf and rec.get("requests"):
        for ev, n in perf.items():
            rec["per_req_" + ev] = round(n / rec["requests"], 3)

    clk = rec.pop("clk_tck", 100)
    if "user_ticks" in rec:
        user, system = rec.pop("user_ticks") / clk, rec.pop("sys_ticks") / clk
        rec["cpu_s"] = user + system
        if rec.get("requests"):
            rec["user_us_per_req"] = round(1e6 * user / rec["requests"], 2)
            rec["sys_us_per_req"] = round(1e6 * system / rec["requests"], 2)
    window = rec.get("window_s")
    for core in ("proxy_core", "load_core"):
        tot = rec.pop(core + "_total", None)
        idle = rec.pop(core + "_idle", None)
        if tot:
            rec[core + "_busy_pct"] = round(100.0 * (tot - idle) / tot, 1)
    if window and "cpu_s" in rec:
        rec["cpu_pct"] = round(100.0 * rec["cpu_s"] / window, 1)
        if "proxy_core_busy_pct" in rec:
            # Whatever else ran on the proxy's core (other builds, kernel work
            # not charged to the proxy): a noise indicator.
            rec["other_on_proxy_core_pct"] = round(max(0.0, rec["proxy_core_busy_pct"] - rec["cpu_pct"]), 1)
    if rec.get("cpu_s") and rec.get("requests"):
        rec["req_per_cpu_s"] = round(rec["requests"] / rec["cpu_s"], 1)
        body = rec.get("body_bytes")
        if body:
            mib = rec["requests"] * body / 1048576.0
            rec["mib_per_cpu_s"] = round(mib / rec["cpu_s"], 1)
            if rec.get("load_duration_s"):
                rec["mib_per_s"] = round(mib / rec["load_duration_s"], 1)
    for k in ("rss", "pss", "base_rss"):
        if k + "_kib" in rec:
            rec[k + "_mib"] = round(rec.pop(k + "_kib") / 1024.0, 2)
    if rec.get("kind") == "idle":
        if rec.get("open"):
            rec["kib_per_conn"] = round((rec["rss_mib"] - rec["base_rss_mib"]) * 1024.0 / rec["open"], 2)
        if rec.get("failed"):
            rec["warning"] = "%d connections failed to open" % rec["failed"]
    elif rec.get("requests") and rec.get("errors", 0) > 0.001 * rec["requests"]:
        rec["warning"] = "more than 0.1% errors"
    if rec.get("kind") not in ("idle", "check") and (rec.get("requests") == 0 or "rps" not in rec):
        rec["warning"] = "load tool reported no requests"
    with open(out_path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")
    show = {k: rec.get(k) for k in ("rps", "cpu_pct", "req_per_cpu_s", "p99_ms", "mean_ms", "mib_per_cpu_s", "rss_mib", "errors", "warning") if rec.get(k) is not None}
    if show:
        print("    " + " ".join("%s=%s" % kv for kv in show.items()), flush=True)


# --------------------------------------------------------------------------
# report

# The keep-alive scenarios (64 and 256 connections) report the same figures.
KEEPALIVE_METRICS = [
    ("req_per_cpu_s", "requests per proxy-CPU-second", True, "{:,.0f}"),
    ("rps", "requests/s", True, "{:,.0f}"),
    ("cpu_pct", "proxy CPU %", None, "{:.0f}"),
    ("user_us_per_req", "user-space CPU µs per request", False, "{:.2f}"),
    ("sys_us_per_req", "kernel CPU µs per request", False, "{:.2f}"),
    ("p50_ms", "p50 latency ms", False, "{:.2f}"),
    ("p99_ms", "p99 latency ms", False, "{:.2f}"),
    ("load_core_busy_pct", "load core busy %", None, "{:.0f}"),
    ("other_on_proxy_core_pct", "other load on proxy core %", None, "{:.0f}"),
]

# (scenario key, title, proxies compared, metrics shown: (field, label, higher_is_better, fmt))
SCENARIOS = [
    ("ka64", "1a. 100-byte GET, keep-alive, 64 connections (wrk)", KEEPALIVE_METRICS),
    ("ka256", "1b. 100-byte GET, keep-alive, 256 connections (wrk)", KEEPALIVE_METRICS),
    ("close", "2. New client connection per request (wrk, `Connection: close`, 32 connections)", [
        ("req_per_cpu_s", "requests per proxy-CPU-second", True, "{:,.0f}"),
        ("rps", "requests/s", True, "{:,.0f}"),
        ("cpu_pct", "proxy CPU %", None, "{:.0f}"),
        ("p99_ms", "p99 latency ms", False, "{:.2f}"),
        ("other_on_proxy_core_pct", "other load on proxy core %", None, "{:.0f}"),
    ]),
    ("large", "3. 1 MiB responses, keep-alive, 16 connections (wrk)", [
        ("mib_per_cpu_s", "MiB per proxy-CPU-second", True, "{:,.0f}"),
        ("mib_per_s", "MiB/s", True, "{:,.0f}"),
        ("cpu_pct", "proxy CPU %", None, "{:.0f}"),
        ("p99_ms", "p99 latency ms", False, "{:.1f}"),
        ("other_on_proxy_core_pct", "other load on proxy core %", None, "{:.0f}"),
    ]),
    ("idle", "4. 10,000 idle keep-alive client connections (each after one request)", [
        ("rss_mib", "RSS MiB, all processes", False, "{:.1f}"),
        ("pss_mib", "PSS MiB, all processes", False, "{:.1f}"),
        ("base_rss_mib", "RSS MiB before connecting", False, "{:.1f}"),
        ("kib_per_conn", "KiB per idle connection (RSS delta)", False, "{:.1f}"),
        ("open", "connections held", None, "{:,.0f}"),
    ]),
    ("h2", "5. HTTP/2 cleartext (h2load, 64 connections × 8 streams)", [
        ("req_per_cpu_s", "requests per proxy-CPU-second", True, "{:,.0f}"),
        ("rps", "requests/s", True, "{:,.0f}"),
        ("cpu_pct", "proxy CPU %", None, "{:.0f}"),
        ("mean_ms", "mean latency ms", False, "{:.2f}"),
        ("other_on_proxy_core_pct", "other load on proxy core %", None, "{:.0f}"),
    ]),
    ("gzip", "10. gzip level 1 on the same 1 MiB JSON, keep-alive, 16 connections (wrk, `Accept-Encoding: gzip`; shoal `compress` vs nginx `gzip on; gzip_comp_level 1`; MiB of JSON compressed)", [
        ("mib_per_cpu_s", "MiB per proxy-CPU-second", True, "{:,.0f}"),
        ("mib_per_s", "MiB/s", True, "{:,.0f}"),
        ("cpu_pct", "proxy CPU %", None, "{:.0f}"),
        ("p99_ms", "p99 latency ms", False, "{:.1f}"),
    ]),
    ("static", "11. A 4 KiB static file, keep-alive, 64 connections (wrk; shoal `files` vs nginx `root`)", [
        ("req_per_cpu_s", "requests per proxy-CPU-second", True, "{:,.0f}"),
        ("rps", "requests/s", True, "{:,.0f}"),
        ("cpu_pct", "proxy CPU %", None, "{:.0f}"),
        ("p99_ms", "p99 latency ms", False, "{:.2f}"),
    ]),
]

CACHE_METRICS = [
    ("req_per_cpu_s", "cache hits per proxy-CPU-second", True, "{:,.0f}"),
    ("rps", "hits/s", True, "{:,.0f}"),
    ("cpu_pct", "proxy CPU %", None, "{:.0f}"),
    ("user_us_per_req", "user-space CPU µs per hit", False, "{:.2f}"),
    ("sys_us_per_req", "kernel CPU µs per hit", False, "{:.2f}"),
    ("p99_ms", "p99 latency ms", False, "{:.2f}"),
    ("backend_requests", "requests reaching the backend while measuring", None, "{:,.0f}"),
    ("load_core_busy_pct", "load core busy %", None, "{:.0f}"),
    ("other_on_proxy_core_pct", "other load on proxy core %", None, "{:.0f}"),
]

HANDSHAKE_METRICS = [
    ("req_per_cpu_s", "full handshakes (one request each) per proxy-CPU-second", True, "{:,.0f}"),
    ("rps", "handshakes/s", True, "{:,.0f}"),
    ("cpu_pct", "proxy CPU %", None, "{:.0f}"),
    ("user_us_per_req", "user-space CPU µs per handshake", False, "{:.1f}"),
    ("sys_us_per_req", "kernel CPU µs per handshake", False, "{:.1f}"),
    ("p99_ms", "p99 latency ms", False, "{:.2f}"),
    ("s_client_resumed", "resumptions the proxy granted `openssl s_client` (5 offers of one session)", None, "{:.0f}"),
    ("load_core_busy_pct", "load core busy %", None, "{:.0f}"),
    ("other_on_proxy_core_pct", "other load on proxy core %", None, "{:.0f}"),
]

# Scenarios 13-17 (issues 15 and 19), after the first twelve.
SCENARIOS += [
    ("cache1k", "13a. Cache hits, 1 KiB responses, keep-alive, 64 connections (wrk; shoal `cache` vs nginx `proxy_cache` vs HAProxy `cache`)", CACHE_METRICS),
    ("cache100k", "13b. Cache hits, 100 KiB responses, keep-alive, 64 connections (wrk; shoal `cache` vs nginx `proxy_cache` vs HAProxy `cache`)", CACHE_METRICS),
    ("tls", "14. TLS 1.3 keep-alive, HTTP/1.1, ECDSA P-256, 64 connections (wrk)", KEEPALIVE_METRICS),
    ("tlshs-ecdsa", "15a. TLS 1.3 full handshakes, ECDSA P-256: a new connection per request, no resumption (wrk, `Connection: close`, 32 connections)", HANDSHAKE_METRICS),
    ("tlshs-rsa", "15b. TLS 1.3 full handshakes, RSA 2048: a new connection per request, no resumption (wrk, `Connection: close`, 32 connections)", HANDSHAKE_METRICS),
    ("h2tls", "16. HTTP/2 over TLS 1.3 by ALPN, ECDSA P-256 (h2load, 64 connections × 8 streams)", [
        ("req_per_cpu_s", "requests per proxy-CPU-second", True, "{:,.0f}"),
        ("rps", "requests/s", True, "{:,.0f}"),
        ("cpu_pct", "proxy CPU %", None, "{:.0f}"),
        ("user_us_per_req", "user-space CPU µs per request", False, "{:.2f}"),
        ("sys_us_per_req", "kernel CPU µs per request", False, "{:.2f}"),
        ("mean_ms", "mean latency ms", False, "{:.2f}"),
        ("load_core_busy_pct", "load core busy %", None, "{:.0f}"),
        ("other_on_proxy_core_pct", "other load on proxy core %", None, "{:.0f}"),
    ]),
    ("workers2", "17. Two workers each, on both cores: 100-byte GET, keep-alive, 64 connections (wrk)", [
        ("req_per_cpu_s", "requests per proxy-CPU-second", True, "{:,.0f}"),
        ("rps", "requests/s", True, "{:,.0f}"),
        ("cpu_pct", "proxy CPU % (of one core)", None, "{:.0f}"),
        ("user_us_per_req", "user-space CPU µs per request", False, "{:.2f}"),
        ("sys_us_per_req", "kernel CPU µs per request", False, "{:.2f}"),
        ("p50_ms", "p50 latency ms", False, "{:.2f}"),
        ("p99_ms", "p99 latency ms", False, "{:.2f}"),
    ]),
    ("allon", "18. Everything on together: header work, access log, a rate limit, 20 routes; 100-byte GET, keep-alive, 64 connections (wrk)", KEEPALIVE_METRICS),
]


def tls_note(rows, scen):
    """The TLS version and cipher each proxy negotiated with openssl s_client."""
    seen = []
    for p in PROXIES:
        got = sorted({"%s %s %s" % (r.get("tls_version"), r.get("tls_cipher"), r.get("tls_group", "")) for r in rows
                      if r.get("scenario") == scen and r.get("proxy") == p and r.get("tls_cipher")})
        if got:
            seen.append("%s %s" % (LABEL[p], " / ".join(got)))
    return ("Negotiated with `openssl s_client` (version, cipher, key exchange): " + "; ".join(seen) + ".") if seen else ""


def scenario_notes(rows, scen):
    """What a reader needs under scenarios 13-17's tables (empty for the others)."""
    if scen == "cache100k" and any(r.get("scenario") == "cache1k" for r in rows):
        return "Set-up and checks as in 13a."
    if scen in ("cache1k", "cache100k"):
        return ("The backend sends the same file (base64 text) with `Cache-Control: max-age=3600`. shoal: "
                "`cache: {memory: {max_size: 64MiB, max_item_size: 1MiB}}`; nginx: `proxy_cache` with its "
                "`proxy_cache_path` on tmpfs (/dev/shm), `sendfile on` and `open_file_cache` (a RAM cache site's "
                "settings); HAProxy: its RAM `cache` (`total-max-size 64`, `max-object-size 1048576`, so 100 KiB "
                "objects fit). All mark hits (shoal `X-Cache`, nginx `add_header X-Cache-Status "
                "$upstream_cache_status`, HAProxy `X-Cache-Status` set when no server was chosen). Every run checks, "
                "for each proxy, that a request after the warm-up and one after the load are HITs and that the "
                "backend answered at most 10 requests while the load ran (the row above), or it stops.")
    if scen == "tls":
        return ("TLS 1.3 only on all three (shoal `tls: {min_version: 1.3}`, nginx `ssl_protocols TLSv1.3`, "
                "HAProxy `ssl-min-ver TLSv1.3`), one self-signed ECDSA P-256 certificate made by openssl for the "
                "run; wrk sends no ALPN, so HTTP/1.1. " + tls_note(rows, scen))
    if scen in ("tlshs-ecdsa", "tlshs-rsa"):
        check = [r for r in rows if r.get("scenario") == "tlscheck"]
        c = ""
        if check:
            r = check[-1]
            c = (" The load does not resume sessions: the same load against nginx with tickets and a session cache "
                 "on resumed %s of %s connections (while `openssl s_client` was granted %s of 5 there)."
                 % (r.get("client_resumed"), r.get("client_sessions"), r.get("s_client_resumed")))
        return ("Each request on a new TLS connection (full handshake), with "
                "resumption off in all three: nginx `ssl_session_tickets off; "
                "ssl_session_cache off;`, HAProxy `no-tls-tickets` and `tune.ssl.cachesize 0`, shoal "
                "`tls.resumption: false` (no session kept, no ticket sent); the s_client row shows each "
                "proxy resumed none." + c + " "
                + tls_note(rows, scen))
    if scen == "h2tls":
        return ("h2 chosen by ALPN (checked with curl before each load); shoal offers `[h2, http/1.1]` by "
                "default, nginx `listen … ssl http2`, HAProxy `alpn h2,http/1.1`. HTTP/1.1 to the backend. "
                + tls_note(rows, scen))
    if scen == "allon":
        return ("Each proxy with its equivalents of shoal's features on at once: the header work of scenario 8 "
                "(X-Forwarded-*, X-Real-IP, X-Request-Id both ways; always on in shoal), an access log (shoal "
                "`access_log: {format: json}` to a file; nginx `combined` to a file with `buffer=64k flush=1s`; "
                "HAProxy `option httplog` to stdout, a file: it has no buffered file log), a per-client-address "
                "rate limit nobody exceeds (shoal `rate_limits` in memory; nginx `limit_req`; HAProxy a stick "
                "table's `http_req_rate` and a deny rule), and 19 routes the requests pass before the one that "
                "takes them (shoal host + path prefix routes; HAProxy `use_backend` on host and `path_beg`; nginx "
                "19 prefix `location`s). shoal also runs HTTP health checks and least_conn, as in 1a.")
    if scen == "workers2":
        vs = []
        for p in PROXIES:
            two = stats([r.get("req_per_cpu_s") for r in rows if r.get("scenario") == "workers2" and r.get("proxy") == p])
            one = stats([r.get("req_per_cpu_s") for r in rows if r.get("scenario") == "ka64" and r.get("proxy") == p])
            if two and one:
                vs.append("%s %s" % (LABEL[p], fmt_ratio(ratio(two, one))))
        rel = (" Per proxy-CPU-second, 2 workers ÷ 1 worker (1a, same rounds): " + ", ".join(vs) + ".") if vs else ""
        return ("shoal `workers: 2`, nginx `worker_processes 2`, HAProxy `nbthread 2`, each pinned to both cores "
                "— which wrk and the backend share, so requests/s is bounded by the load side and the two "
                "compete for the same cores: compare requests per proxy-CPU-second (all the proxy's processes "
                "and threads). Its CPU % is of one core (up to 200)." + rel)
    return ""


FEATURE_VARIANTS = [
    ("full", "HTTP health checks + least_conn (features on)"),
    ("routes20", "features on + 20 routes, the last one taking the requests"),
    ("ratelimit", "features on + a per-address rate limit in memory nobody exceeds"),
    ("ratelimit-redis", "features on + the same limit counted in Redis on loopback"),
    ("ratelimit-redis-lease", "the same in Redis with `mode: lease`"),
    ("accesslog", "features on + the access log (JSON, to a file)"),
    ("hyper-engine", "features on, hyper serving every request (`proxy.engine: hyper`)"),
    ("tcp-checks", "TCP health checks + least_conn"),
    ("round-robin", "HTTP health checks + round_robin"),
    ("off", "TCP health checks + round_robin (features off)"),
]


def load_raw(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def stats(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def cell(s, fmt):
    if not s:
        return "–"
    if s["n"] == 1 or s["min"] == s["max"]:
        return fmt.format(s["median"])
    return "%s (%s–%s)" % (fmt.format(s["median"]), fmt.format(s["min"]), fmt.format(s["max"]))


def ratio(a, b):
    if not a or not b or not b["median"]:
        return None
    return a["median"] / b["median"]


def summarize(rows):
    """{scenario: {proxy: {field: stats}}} for the compared scenarios, and
    {variant: {field: stats}} for shoal's features scenario."""
    by = {}
    for r in rows:
        if r.get("scenario") in ("features", "matched", "syscalls", "ceiling", "accesslog", "tlscheck"):
            continue
        by.setdefault(r["scenario"], {}).setdefault(r["proxy"], []).append(r)
    out = {}
    for scen, fields in ((s[0], [m[0] for m in s[2]]) for s in SCENARIOS):
        if scen not in by:
            continue
        out[scen] = {}
        for proxy, rs in by[scen].items():
            out[scen][proxy] = {f: stats([r.get(f) for r in rs]) for f in fields}
            out[scen][proxy]["errors"] = stats([r.get("errors") for r in rs])
            out[scen][proxy]["warnings"] = sorted({r["warning"] for r in rs if r.get("warning")})
    feats = {}
    for r in rows:
        if r.get("scenario") == "features":
            feats.setdefault(r["variant"], []).append(r)
    fout = {}
    for v, rs in feats.items():
        fout[v] = {f: stats([r.get(f) for r in rs]) for f in ("req_per_cpu_s", "rps", "cpu_pct", "p99_ms")}
    return out, fout


def paired_ratio_range(rows, scen, field, other):
    """min–max over rounds of shoal/other, pairing by round."""
    vals = {}
    for r in rows:
        if r.get("scenario") == scen and r.get(field) is not None:
            vals.setdefault(r["round"], {})[r["proxy"]] = r[field]
    rs = [v["shoal"] / v[other] for v in vals.values() if "shoal" in v and v.get(other)]
    return (min(rs), max(rs)) if rs else None


def fmt_ratio(x, rng=None):
    if x is None:
        return "–"
    s = "%.2f×" % x
    if rng and abs(rng[1] - rng[0]) > 0.005:
        s += " (%.2f–%.2f)" % rng
    return s


def markdown(rows, meta, out, fout):
    L = []
    L.append("Run on %s — %s." % (meta["date"], meta["machine"]))
    L.append("")
    L.append("Command: `%s` (%d round(s) of %d s runs, interleaved: %s; proxy on CPU %s, load generator and backend on CPU %s). shoal %s."
             % (meta["command"], meta["rounds"], meta["duration_s"], ", ".join(LABEL[p] for p in PROXIES),
                meta["proxy_cpu"], meta["load_cpu"], meta["shoal"]))
    L.append("")
    L.append("Each cell: median (min–max) over the rounds. Ratios are shoal ÷ the other, of the medians, "
             "with the range of the per-round ratios in brackets; for latency and memory lower is better.")
    L.append("")
    for scen, title, metrics in SCENARIOS:
        if scen not in out:
            continue
        d = out[scen]
        L.append("#### " + title)
        L.append("")
        body = []
        for field, label, better, fmt in metrics:
            cells = [cell(d.get(p, {}).get(field), fmt) for p in PROXIES]
            if better is None:
                rn = rh = ""
            else:
                s = d.get("shoal", {}).get(field)
                rn = fmt_ratio(ratio(s, d.get("nginx", {}).get(field)), paired_ratio_range(rows, scen, field, "nginx"))
                rh = fmt_ratio(ratio(s, d.get("haproxy", {}).get(field)), paired_ratio_range(rows, scen, field, "haproxy"))
            body.append((label, *cells, rn, rh))
        md_table(L, ("", "shoal", "nginx", "HAProxy", "shoal/nginx", "shoal/HAProxy"), body)
        warns = []
        for p in PROXIES:
            e = d.get(p, {}).get("errors")
            if e and e["max"]:
                warns.append("%s: up to %d errors in a run" % (LABEL[p], e["max"]))
            for w in d.get(p, {}).get("warnings", []):
                warns.append("%s: %s" % (LABEL[p], w))
        if warns:
            L.append("")
            L.append("Errors/warnings: " + "; ".join(warns) + ".")
        note = scenario_notes(rows, scen)
        if note:
            L.append("")
            L.append(note)
        L.append("")
    if fout:
        L.append("#### 6. shoal with its features on and off (keep-alive, 64 connections)")
        L.append("")
        off = fout.get("off", {}).get("req_per_cpu_s")
        body = []
        for v, label in FEATURE_VARIANTS:
            if v not in fout:
                continue
            s = fout[v]
            r = ratio(s["req_per_cpu_s"], off)
            body.append((
                label, cell(s["req_per_cpu_s"], "{:,.0f}"), cell(s["rps"], "{:,.0f}"),
                cell(s["cpu_pct"], "{:.0f}"), cell(s["p99_ms"], "{:.2f}"),
                "%.3f×" % r if r else "–"))
        md_table(L, ("shoal variant", "requests per proxy-CPU-second", "requests/s", "proxy CPU %",
                     "p99 ms", "vs. features off"), body)
        L.append("")
        L.append("Request ids, X-Forwarded-*/X-Real-IP and the Prometheus metrics' counters are always on in shoal "
                 "and so are in every variant. Routes, rate limits (in memory, and in a redis-server on the load "
                 "generator's core) and the access log are rows of their own, each on top of `full`.")
        L.append("")
    sc = syscall_table(rows)
    if sc:
        L.append("#### 7. Syscalls and context switches per request (keep-alive, 64 connections; perf stat)")
        L.append("")
        md_table(L, ("per request", "shoal", "nginx", "HAProxy"), [(label, *cells) for label, cells in sc])
        L.append("")
        L.append("Counted in the kernel while the proxy ran under the same load as 1a, in a run of its own "
                 "(counting adds a little to every syscall). Syscalls a proxy never made are left out.")
        L.append("")
    mt = matched_table(rows, out)
    if mt:
        L.append("#### 8. nginx and HAProxy also doing shoal's header work (keep-alive, 64 connections)")
        L.append("")
        L.append("shoal always adds X-Request-Id (to the backend and the client), X-Forwarded-For/-Proto/-Host "
                 "and X-Real-IP; the plain nginx and HAProxy configs of 1–5 do not. Here they do too "
                 "(`bench/conf/nginx-headers.conf`, HAProxy's `BENCH_HEADERS` block), in the same rounds.")
        L.append("")
        md_table(L, ("proxy", "requests per proxy-CPU-second", "p99 ms", "cost of the headers", "shoal ÷ this"), mt)
        L.append("")
    at = accesslog_table(rows)
    if at:
        L.append("#### 12. The access log's cost (keep-alive, 64 connections)")
        L.append("")
        md_table(L, ("proxy", "log off: requests per proxy-CPU-second", "log on", "change"), at)
        L.append("")
        L.append("Each proxy with its access log off and on, in the same rounds; every request is logged to a "
                 "file in /tmp. shoal formats each line on the request's thread and writes batches from a "
                 "thread of its own (counted in shoal's CPU).")
        L.append("")
    ct = ceiling_table(rows, out)
    if ct:
        L.append("#### 9. The ceiling: a bare hyper proxy (keep-alive)")
        L.append("")
        L.append("`bench/hyper-baseline`: HTTP/1.1 in, round robin, hyper-util's pooled client out, nothing else "
                 "(no health checks, request ids, forwarding headers, timeouts, limits, retries or metrics), "
                 "built with shoal's release settings and run like the others (one thread, proxy core), in the "
                 "same rounds. What any proxy built on hyper 1.x can reach here at most.")
        L.append("")
        md_table(L, ("connections", "bare hyper", "shoal", "nginx", "HAProxy", "hyper ÷ nginx",
                     "hyper ÷ HAProxy", "shoal ÷ hyper"), ct)
        L.append("")
        L.append("Requests per proxy-CPU-second, medians; scenario 1a/1b for shoal, nginx and HAProxy.")
        L.append("")
    t = targets(out)
    if t:
        L.append("#### Targets (issue 5), from this run")
        L.append("")
        md_table(L, ("target", "figure", "met"), [(name, fig, "yes" if ok else "**no**") for name, fig, ok in t])
        L.append("")
    return "\n".join(L)


def md_table(L, header, rows):
    """Append a markdown table to L: the header cells, then one line per row."""
    L.append("|" + "|".join(" %s " % h if h else " " for h in header) + "|")
    L.append("|" + "---|" * len(header))
    for row in rows:
        L.append("| " + " | ".join(str(c) for c in row) + " |")


def matched_table(rows, out):
    m = [r for r in rows if r.get("scenario") == "matched"]
    ka = out.get("ka64")
    if not m or not ka:
        return []
    shoal = ka.get("shoal", {}).get("req_per_cpu_s")
    table = []
    for p in ("nginx", "haproxy"):
        plain = ka.get(p, {}).get("req_per_cpu_s")
        hdr = stats([r.get("req_per_cpu_s") for r in m if r["proxy"] == p])
        p99 = stats([r.get("p99_ms") for r in m if r["proxy"] == p])
        if not hdr:
            continue
        cost = ratio(hdr, plain)
        table.append(("%s, plain (as in 1a)" % LABEL[p], cell(plain, "{:,.0f}"), cell(ka[p].get("p99_ms"), "{:.2f}"),
                      "", fmt_ratio(ratio(shoal, plain))))
        table.append(("%s + shoal's headers" % LABEL[p], cell(hdr, "{:,.0f}"), cell(p99, "{:.2f}"),
                      "%+.0f%% throughput per CPU" % (100 * (cost - 1)) if cost else "–",
                      fmt_ratio(ratio(shoal, hdr))))
    if table and shoal:
        table.append(("shoal (as in 1a)", cell(shoal, "{:,.0f}"), cell(ka["shoal"].get("p99_ms"), "{:.2f}"), "", ""))
    return table


def accesslog_table(rows):
    """Rows of the access-log table: each proxy with its log off and on,
    in the same rounds (shoal's from scenario 6's `full` and `accesslog`
    variants, nginx's from scenario 12)."""
    table = []
    pairs = (
        ("shoal", "features", "full", "accesslog", "shoal (JSON lines, `access_log: {format: json}`)"),
        ("nginx", "accesslog", "plain", "accesslog", "nginx (`access_log FILE combined buffer=64k`)"),
    )
    for proxy, scen, off_v, on_v, label in pairs:
        def pick(v):
            return [r for r in rows if r.get("scenario") == scen and r.get("proxy") == proxy
                    and r.get("variant", "") == v]
        off, on = pick(off_v), pick(on_v)
        if not off or not on:
            continue
        off_s = stats([r.get("req_per_cpu_s") for r in off])
        on_s = stats([r.get("req_per_cpu_s") for r in on])
        cost = ratio(on_s, off_s)
        table.append((label, cell(off_s, "{:,.0f}"), cell(on_s, "{:,.0f}"),
                      "%+.1f%%" % (100 * (cost - 1)) if cost else "–"))
    return table


def ceiling_table(rows, out):
    """Rows of the bare-hyper table: its requests per CPU-second next to 1a/1b."""
    table = []
    for conns, scen in ((64, "ka64"), (256, "ka256")):
        h = stats([r.get("req_per_cpu_s") for r in rows
                   if r.get("scenario") == "ceiling" and int(r.get("connections", 0)) == conns])
        if not h:
            continue
        ka = out.get(scen, {})
        get = lambda p: ka.get(p, {}).get("req_per_cpu_s")
        table.append((conns, cell(h, "{:,.0f}"), cell(get("shoal"), "{:,.0f}"), cell(get("nginx"), "{:,.0f}"),
                      cell(get("haproxy"), "{:,.0f}"), fmt_ratio(ratio(h, get("nginx"))),
                      fmt_ratio(ratio(h, get("haproxy"))), fmt_ratio(ratio(get("shoal"), h))))
    return table


def syscall_table(rows):
    rs = [r for r in rows if r.get("scenario") == "syscalls"]
    if not rs:
        return []
    fields = sorted({k for r in rs for k in r if k.startswith("per_req_")})
    first = ["per_req_syscalls", "per_req_context_switches"]
    fields = [f for f in first if f in fields] + [f for f in fields if f not in first]
    table = []
    for f in fields:
        cells = []
        meds = []
        for p in PROXIES:
            st = stats([r.get(f) for r in rs if r["proxy"] == p])
            meds.append(st["median"] if st else 0)
            cells.append(cell(st, "{:.2f}"))
        if max(meds) < 0.005:
            continue
        label = {"per_req_syscalls": "all syscalls", "per_req_context_switches": "context switches"}.get(
            f, "`%s`" % f[len("per_req_"):])
        table.append((label, cells))
    return table


def targets(out):
    t = []
    for scen, conns in (("ka64", 64), ("ka256", 256)):
        d = out.get(scen)
        if not d or "shoal" not in d:
            continue
        s = d["shoal"]
        for other, need in (("haproxy", 1.1), ("nginx", 1.3)):
            r = ratio(s["req_per_cpu_s"], d.get(other, {}).get("req_per_cpu_s"))
            if r is not None:
                t.append(("requests per proxy-CPU-second ≥ %.1f × %s at %d connections" % (need, LABEL[other], conns),
                          "%.2f×" % r, r >= need))
        for other in ("nginx", "haproxy"):
            r = ratio(s["p99_ms"], d.get(other, {}).get("p99_ms"))
            if r is not None:
                t.append(("p99 no worse than %s at %d connections" % (LABEL[other], conns),
                          "%.2f ms vs %.2f ms" % (s["p99_ms"]["median"], d[other]["p99_ms"]["median"]), r <= 1.0))
    d = out.get("idle")
    if d and "shoal" in d and "nginx" in d:
        s, n = d["shoal"]["rss_mib"], d["nginx"]["rss_mib"]
        if s and n:
            t.append(("RSS with 10,000 idle connections ≤ nginx's", "%.1f MiB vs %.1f MiB" % (s["median"], n["median"]),
                      s["median"] <= n["median"]))
    return t


def json_line(meta, out, fout, rows):
    res = {}
    for scen, d in out.items():
        res[scen] = {}
        for p, fields in d.items():
            res[scen][p] = {f: round(s["median"], 3) for f, s in fields.items()
                            if isinstance(s, dict) and s.get("median") is not None and f != "errors"}
    ratios = {}
    for scen, _, metrics in SCENARIOS:
        if scen not in out:
            continue
        key = metrics[0][0]
        s = out[scen].get("shoal", {}).get(key)
        ratios[scen] = {"metric": key}
        for other in ("nginx", "haproxy"):
            r = ratio(s, out[scen].get(other, {}).get(key))
            ratios[scen]["shoal/" + other] = round(r, 3) if r else None
    feats = {v: {f: round(s["median"], 3) for f, s in fs.items() if s} for v, fs in fout.items()}
    matched = {}
    for r in rows:
        if r.get("scenario") == "matched" and r.get("req_per_cpu_s"):
            matched.setdefault(r["proxy"], []).append(r["req_per_cpu_s"])
    if matched:
        res["matched"] = {p + "+headers": {"req_per_cpu_s": round(statistics.median(v), 1)} for p, v in matched.items()}
    ceiling = {}
    for r in rows:
        if r.get("scenario") == "ceiling" and r.get("req_per_cpu_s"):
            ceiling.setdefault("ka%s" % r.get("connections"), []).append(r["req_per_cpu_s"])
    if ceiling:
        res["ceiling"] = {k: {"hyper_req_per_cpu_s": round(statistics.median(v), 1)} for k, v in ceiling.items()}
    doc = {
        "bench": "shoal-vs-nginx-haproxy",
        "date": meta["date"],
        "commit": meta["shoal"],
        "machine": meta["machine"],
        "command": meta["command"],
        "rounds": meta["rounds"],
        "duration_s": meta["duration_s"],
        "medians": res,
        "ratios": ratios,
        "shoal_features": feats,
        "targets": [{"target": n, "figure": f, "met": ok} for n, f, ok in targets(out)],
    }
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


# ---- chart (gnuplot)

PANELS = [
    ("Requests per proxy-CPU-second (higher is better)", "{/*0.9 requests / CPU-s}",
     [("ka64", "req_per_cpu_s", "keep-alive\\n64 conns"), ("ka256", "req_per_cpu_s", "keep-alive\\n256 conns"),
      ("close", "req_per_cpu_s", "new conn\\nper request"), ("h2", "req_per_cpu_s", "h2c\\n64×8 streams"),
      ("workers2", "req_per_cpu_s", "2 workers\\nkeep-alive 64"), ("allon", "req_per_cpu_s", "everything on\\nkeep-alive 64")]),
    ("p99 latency, keep-alive (lower is better)", "ms",
     [("ka64", "p99_ms", "64 conns"), ("ka256", "p99_ms", "256 conns")]),
    ("1 MiB responses (higher is better)", "MiB / CPU-s",
     [("large", "mib_per_cpu_s", "MiB per proxy-CPU-s")]),
    ("10,000 idle connections (lower is better)", "MiB",
     [("idle", "rss_mib", "RSS"), ("idle", "pss_mib", "PSS")]),
    ("Cache hits per proxy-CPU-second (higher is better)", "hits / CPU-s",
     [("cache1k", "req_per_cpu_s", "1 KiB"), ("cache100k", "req_per_cpu_s", "100 KiB")]),
    ("TLS 1.3, requests per proxy-CPU-second (higher is better)", "requests / CPU-s",
     [("tls", "req_per_cpu_s", "h1 keep-alive\\n64 conns"), ("h2tls", "req_per_cpu_s", "h2 by ALPN\\n64×8 streams")]),
    ("TLS 1.3 full handshakes per proxy-CPU-second (higher is better)", "handshakes / CPU-s",
     [("tlshs-ecdsa", "req_per_cpu_s", "ECDSA P-256"), ("tlshs-rsa", "req_per_cpu_s", "RSA 2048")]),
]


def chart(out, meta, png, workdir):
    gp = shutil.which("gnuplot")
    if not gp:
        print("gnuplot not found: no chart", file=sys.stderr)
        return False
    panels = []
    for i, (title, ylabel, bars) in enumerate(PANELS):
        lines = []
        for scen, field, label in bars:
            d = out.get(scen)
            if not d:
                continue
            cols = []
            for p in PROXIES:
                s = d.get(p, {}).get(field)
                cols += ["%g" % s["median"], "%g" % s["min"], "%g" % s["max"]] if s else ["0", "0", "0"]
            lines.append('"%s" %s' % (label, " ".join(cols)))
        if not lines:
            continue
        path = os.path.join(workdir, "panel%d.dat" % i)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        panels.append((title, ylabel, path))
    if not panels:
        return False
    cols = 2 if len(panels) > 1 else 1
    nrows = (len(panels) + cols - 1) // cols
    script = [
        "set terminal pngcairo size %d,%d font 'DejaVu Sans,10' noenhanced" % (560 * cols, 380 * nrows + 40),
        "set output '%s'" % png,
        "set multiplot layout %d,%d title 'shoal vs nginx vs HAProxy, proxy on one core — %s (median, bars: min–max over %d rounds)'"
        % (nrows, cols, meta["date"][:10], meta["rounds"]),
        "set style data histogram",
        "set style histogram errorbars gap 2 lw 1",
        "set style fill solid 0.85 border -1",
        "set boxwidth 0.9",
        "set key top right",
        "set grid ytics",
        "set bmargin 4",  # room for two-line bar labels
        "set offsets 0, 0, graph 0.15, 0",  # headroom above the bars for the key
        "set yrange [0:*]",
        "set format y \"%'.0f\"",
        "set decimalsign locale",
    ]
    for title, ylabel, path in panels:
        script += [
            "set title '%s'" % title,
            "set ylabel '%s'" % ylabel.replace("{/*0.9 ", "").replace("}", ""),
            "plot '%s' using 2:3:4:xtic(1) title 'shoal' lc rgb '#1f77b4', '' using 5:6:7 title 'nginx' lc rgb '#2ca02c', "
            "'' using 8:9:10 title 'HAProxy' lc rgb '#d62728'" % path,
        ]
    script.append("unset multiplot")
    sp = os.path.join(workdir, "chart.gp")
    with open(sp, "w", encoding="utf-8") as f:
        f.write("\n".join(script) + "\n")
    r = subprocess.run([gp, sp], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        print("gnuplot failed:\n" + r.stderr, file=sys.stderr)
        return False
    return True


BEGIN = "<!-- bench:results:begin (written by bench/run; edit outside these markers) -->"
END = "<!-- bench:results:end -->"


def update_docs(doc_path, block):
    with open(doc_path, encoding="utf-8") as f:
        text = f.read()
    a = text.find(BEGIN)
    b = text.find(END)
    if a < 0 or b < a:
        print("%s has no results markers; not updated" % doc_path, file=sys.stderr)
        return
    text = text[: a + len(BEGIN)] + "\n" + block.strip() + "\n" + text[b:]
    with open(doc_path, "w", encoding="utf-8") as f:
        f.write(text)


def cmd_report(args):
    rdir = args[0]
    docs = chart_png = None
    if "--docs" in args:
        docs = args[args.index("--docs") + 1]
    if "--chart" in args:
        chart_png = args[args.index("--chart") + 1]
    with open(os.path.join(rdir, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    rows = load_raw(os.path.join(rdir, "raw.jsonl"))
    out, fout = summarize(rows)
    md = markdown(rows, meta, out, fout)
    line = json_line(meta, out, fout, rows)
    png = os.path.join(rdir, "bench.png")
    have_chart = chart(out, meta, png, rdir)
    with open(os.path.join(rdir, "summary.json"), "w", encoding="utf-8") as f:
        f.write(line + "\n")
    with open(os.path.join(rdir, "table.md"), "w", encoding="utf-8") as f:
        f.write(md + "\n")
    print(md)
    print()
    print(line)
    if docs:
        if have_chart and chart_png:
            shutil.copyfile(png, chart_png)
        rel = os.path.relpath(chart_png, os.path.dirname(docs)) if chart_png else None
        block = md
        if have_chart and rel:
            block += "\n![shoal vs nginx vs HAProxy](%s)\n" % rel
        block += "\nThe same run as one JSON line (`bench/results/<date>/summary.json`):\n\n```json\n%s\n```\n" % line
        update_docs(docs, block)
        print("\nupdated %s%s" % (docs, " and " + chart_png if have_chart and chart_png else ""))


def cmd_criterion(args):
    """Markdown table of the latest criterion estimates under TARGET/criterion."""
    base = os.path.join(args[0], "criterion")
    rows = []
    for dirpath, _, files in os.walk(base):
        if os.path.basename(dirpath) == "new" and "estimates.json" in files and "benchmark.json" in files:
            with open(os.path.join(dirpath, "benchmark.json"), encoding="utf-8") as f:
                bench = json.load(f)
            with open(os.path.join(dirpath, "estimates.json"), encoding="utf-8") as f:
                est = json.load(f)
            m = est["median"]
            rows.append((bench["full_id"], m["point_estimate"], m["confidence_interval"]["lower_bound"],
                         m["confidence_interval"]["upper_bound"]))
    L = []
    md_table(L, ("benchmark", "median", "95% interval"),
             [("`%s`" % name, "%.1f ns" % mid, "%.1f–%.1f ns" % (lo, hi)) for name, mid, lo, hi in sorted(rows)])
    print("\n".join(L))


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "ports":
        cmd_ports(args[0])
    elif cmd == "record":
        cmd_record(args)
    elif cmd == "report":
        cmd_report(args)
    elif cmd == "criterion":
        cmd_criterion(args)
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
