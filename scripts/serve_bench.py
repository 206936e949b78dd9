#!/usr/bin/env python3
"""The embedded default measured as users run it: `routerctl serve` as one process (trigger
and deliver together) with wrk pumping triggers with unique ids into it at 32 connections,
every event delivered to a fast local sink; the Python baseline measured in the same run.

    scripts/serve_bench.py [--seconds 10] [--repeat 5] [SECTION ...]

Sections (default: all): `serve` (the headline table), `sizes` (events of 0.1 to 60 KiB),
`routes` (routes files of 10, 100, 1000 routes), `backlog` (drain rate with 100,000 messages
queued), `disk` (the files' size through a burst and its drain). Needs `wrk` and the release
binaries: `cargo build --release -p routerctl && cargo build --release -p deliver --example
deliver_bench` (scripts/bench.sh section `serve` does both). Prints Markdown tables.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from scenario_lib import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE = os.environ.get("BASELINE_DIR", os.path.join(ROOT, "scripts", "baseline"))
VENV = os.path.join(ROOT, "target", "baseline-venv")
ROUTERCTL = os.path.join(ROOT, "target", "release", "routerctl")
SINK = os.path.join(ROOT, "target", "release", "examples", "deliver_bench")
KEY = "bench-key"
SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

# The baseline's event (trigger.lua), `id` made unique per request by the wrk script.
EVENT_HEAD = '{"id":"evt_%s","event_type":"intent","name":"handover","score":0.92,"user_id":"usr_1","session_id":"sess_1","data":{"text":"agent please"'
# The same event without an `id` (what a Cognigy flow sends unless it sets one): the router
# names each event itself.
EVENT_HEAD_NO_ID = '{"event_type":"intent","name":"handover","score":0.92,"user_id":"usr_1","session_id":"sess_1","data":{"text":"agent please"'
TEMPLATE = ('{"user": {{ event.user_id | tojson }}, "session": {{ event.session_id | tojson }}, '
            '"text": {{ ("Intent " ~ event.name ~ " matched") | tojson }}, "said": {{ event.data.text | tojson }}, '
            '"score": {{ event.score }}, "delivery": {{ delivery.id | tojson }}}')


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def wait_port(port, timeout=20):
    import socket
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def baseline_python():
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "--quiet", "--disable-pip-version-check",
                        "-r", os.path.join(BASELINE, "requirements.txt")], check=True)
    return py


def wrk_script(path, pad_bytes, prefix, ids=True):
    """A wrk script posting the baseline's event with a unique id, or with none when `ids`
    is false (and `pad_bytes` more in `data.pad`, for the size table)."""
    pad = "x" * pad_bytes
    tail = '}}' if not pad_bytes else ',"pad":"%s"}}' % pad
    body = ((EVENT_HEAD % (prefix + "%d")) if ids else EVENT_HEAD_NO_ID.replace("%", "%%")) + tail
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["X-API-Key"] = "{KEY}"\n'
                f"local fmt = [==[{body}]==]\n"
                "local n = 0\n"
                "request = function()\n"
                "  n = n + 1\n"
                "  return wrk.format(nil, nil, nil, string.format(fmt, n))\n"
                "end\n")


def wrk(url, seconds, script, connections=32):
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script, url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))

    def pct(p):
        m = re.search(r"^\s+%s%%\s+([0-9.]+)(us|ms|s)" % p, out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"non-2xx answers under load: {errors.group(1)}\n{out}")
    return {"rps": rps, "total": total, "p50": pct(50), "p99": pct(99)}


class Sink:
    def __init__(self, port=None):
        self.port = port or free_port()
        self.proc = subprocess.Popen([SINK, "sink", str(self.port)], stdout=subprocess.DEVNULL)
        wait_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def stats(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as r:
            return json.load(r)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def routes_file(sink_url, n_routes=1, bench_where="", bench_extra=""):
    out = ('[ingest]\nauth = "flows"\nmax_body_kb = 256\n[delivery]\nallow_private_targets = true\n'
           '[signing]\nsecret = "router/signing-key"\n[auth.flows]\ntype = "api_key"\nsecret = "router/ingest-key"\n')
    for i in range(n_routes):
        # One route fires for the benchmark's event; the others are never matched (a
        # routes file of many routes, one of which fires).
        name = "bench" if i == 0 else f"other-{i:04d}"
        where = f", where = {{ {bench_where} }}" if bench_where else ""
        trigger = f'{{ event_type = "intent", name = "handover"{where} }}' if i == 0 else \
            f'{{ event_type = "intent", name = "other-{i}" }}'
        out += (f'[[route]]\nname = "{name}"\ntarget_url = "{sink_url}"\n'
                f"template = '{TEMPLATE}'\ntriggers = [{trigger}]\n")
        if i == 0 and bench_extra:
            out += bench_extra + "\n"
    return out


class Serve:
    """`routerctl serve` on a fresh data dir (or the one of a `Serve` stopped with
    `keep=True`)."""

    def __init__(self, routes_text, extra=(), reuse=None, log_level="warn"):
        """`log_level` None runs serve with its default logging (`info`: an audit line per
        trigger and a line per delivery), written to a file as a service manager would."""
        self.dir = reuse or tempfile.mkdtemp(prefix="serve-bench-")
        with open(os.path.join(self.dir, "routes.toml"), "w") as f:
            f.write(routes_text)
        with open(os.path.join(self.dir, "secrets.toml"), "w") as f:
            f.write(f'"router/ingest-key" = "{KEY}"\n"router/signing-key" = "{SIGNING}"\n')
        self.port = free_port()
        self.data = os.path.join(self.dir, "data")
        env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
        if log_level:
            env["RUST_LOG"] = log_level
        self.log = open(os.path.join(self.dir, "serve.log"), "w")
        self.proc = subprocess.Popen(
            [ROUTERCTL, "--routes", os.path.join(self.dir, "routes.toml"),
             "--secrets", os.path.join(self.dir, "secrets.toml"), "--data-dir", self.data,
             "serve", "--port", str(self.port), *extra],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_port(self.port)
        self.base = f"http://127.0.0.1:{self.port}"
        self.trigger_url = self.base + "/api/v2/webhooks/trigger"

    def health(self):
        with urllib.request.urlopen(self.base + "/api/v2/health", timeout=10) as r:
            return json.load(r)

    def disk_mb(self):
        total = 0
        for name in os.listdir(self.data):
            if name.startswith("queue.db"):
                total += os.path.getsize(os.path.join(self.data, name))
        return total / 1e6

    def files_mb(self):
        return {n: os.path.getsize(os.path.join(self.data, n)) / 1e6
                for n in sorted(os.listdir(self.data)) if n.startswith("queue.db")}

    def rss(self):
        return peak_rss_mb(self.proc.pid)

    def stop(self, keep=False):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_delivered(sink, want, timeout=600):
    end = time.time() + timeout
    while time.time() < end:
        s = sink.stats()
        if s["count"] >= want:
            return s
        time.sleep(0.1)
    raise SystemExit(f"only {sink.stats()['count']} of {want} deliveries arrived in {timeout} s")


def whole_job(seconds, pad=0, n_routes=1, tmp=None, ids=True, log_level="warn", where="", extra=""):
    """One wrk run into a fresh serve; returns the trigger figures, deliveries/s (first
    trigger to last delivery), and serve's peak RSS."""
    sink = Sink()
    serve = Serve(routes_file(sink.url, n_routes, where, extra), log_level=log_level)
    script = os.path.join(tmp, "unique.lua")
    wrk_script(script, pad, f"{int(time.time() * 1000)}_", ids=ids)
    started_ms = time.time() * 1000
    w = wrk(serve.trigger_url, seconds, script)
    # Every 202 promised a delivery; wrk may count a request cut off at its end that serve
    # answered anyway, so wait for at least the requests wrk saw complete.
    s = wait_delivered(sink, w["total"])
    time.sleep(0.5)
    s = sink.stats()
    w["deliveries"] = s["count"]
    w["deliveries_per_s"] = s["count"] / ((s["last_ms"] - started_ms) / 1000)
    w["rss"] = serve.rss()
    serve.stop()
    sink.stop()
    return w


def baseline(seconds, tmp):
    py = baseline_python()
    sink = Sink()
    best = 0.0
    for _ in range(3):
        out = subprocess.run([py, os.path.join(BASELINE, "bench_seed.py"), "deliver", sink.url, "3000"],
                             capture_output=True, text=True, check=True).stdout
        best = max(best, float(re.search(r"seed deliver: (\d+) deliveries/s", out).group(1)))
    sink.stop()
    port = free_port()
    proc = subprocess.Popen([py, os.path.join(BASELINE, "serve_seed.py"), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    w = wrk(f"http://127.0.0.1:{port}/api/v2/webhooks/trigger", seconds, os.path.join(BASELINE, "trigger.lua"))
    w["rss"] = peak_rss_mb(proc.pid)
    proc.terminate()
    proc.wait()
    w["deliveries_per_s"] = best
    return w


def section_serve(args, tmp):
    runs = []
    for r in range(args.repeat):
        log(f"== serve, run {r + 1} of {args.repeat}: the baseline, then routerctl serve")
        # What a user runs: events without an `id` (the router names each one), serve's
        # default logging (an audit line per trigger, a line per delivery) to a file, and a
        # signed route. The shapes section measures the others against it.
        runs.append((baseline(args.seconds, tmp), whole_job(args.seconds, tmp=tmp, ids=False, log_level=None)))

    def ratio(b, o, key):
        return o[key] / b[key]

    # The run with the median trigger ratio (the noisiest figure), reported whole.
    b, o = sorted(runs, key=lambda bo: ratio(*bo, "rps"))[len(runs) // 2]
    print(f"\n`routerctl serve` (embedded queue, durable, its default logging to a file), wrk -t1 -c32 "
          f"-d{args.seconds}s with events without an `id`, one signed route to a local sink; the median of "
          f"{len(runs)} runs, each measuring the baseline "
          f"first: {o['total']} triggers, {o['deliveries']} deliveries.\n")
    print("| figure | Python baseline | routerctl serve | ratio | target |")
    print("|---|---:|---:|---:|---:|")
    print(f"| deliveries/s, trigger to target, whole job (baseline: its delivery engine, best of 3) "
          f"| {b['deliveries_per_s']:.0f} | {o['deliveries_per_s']:.0f} | {ratio(b, o, 'deliveries_per_s'):.1f}x | >= 15x |")
    print(f"| trigger requests/s at 32 connections while serve also delivers | {b['rps']:.0f} | {o['rps']:.0f} "
          f"| {ratio(b, o, 'rps'):.1f}x | >= 10x |")
    print(f"| p99 trigger latency ms (p50) | {b['p99']:.2f} ({b['p50']:.2f}) | {o['p99']:.2f} ({o['p50']:.2f}) | | < 5 ms |")
    print(f"| peak RSS MB | {b['rss']:.1f} | {o['rss']:.1f} | | < 20 MB |")
    print("\nEvery run (baseline / serve):\n")
    print("| run | deliveries/s | ratio | triggers/s | ratio | p99 ms | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for i, (b, o) in enumerate(runs, 1):
        print(f"| {i} | {b['deliveries_per_s']:.0f} / {o['deliveries_per_s']:.0f} | {ratio(b, o, 'deliveries_per_s'):.1f}x "
              f"| {b['rps']:.0f} / {o['rps']:.0f} | {ratio(b, o, 'rps'):.1f}x | {b['p99']:.1f} / {o['p99']:.2f} "
              f"| {b['rss']:.1f} / {o['rss']:.1f} |")


def section_shapes(args, tmp):
    """What the headline's shape hides: events without an `id` (the router names them) and
    serve's default logging (an audit line per trigger, a line per delivery), each against
    the same run's baseline."""
    log("== shapes")
    shapes = [("unique ids, RUST_LOG=warn", True, "warn"),
              ("no id, RUST_LOG=warn", False, "warn"),
              ("unique ids, default logging (info, to a file)", True, None),
              ("no id, default logging (info, to a file)", False, None)]
    rows = []
    for r in range(args.repeat):
        log(f"== shapes, run {r + 1} of {args.repeat}")
        b = baseline(args.seconds, tmp)
        rows.append((b, [whole_job(args.seconds, tmp=tmp, ids=i, log_level=lv) for _, i, lv in shapes]))
    print(f"\nThe event's shape and serve's logging, wrk -t1 -c32 -d{args.seconds}s, one signed route to a local "
          f"sink; {args.repeat} runs, each measuring the baseline first (ratios are to that run's baseline):\n")
    print("| run | shape | triggers/s | ratio | p99 ms | deliveries/s (whole job) | ratio | peak RSS MB |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n, (b, outs) in enumerate(rows, 1):
        print(f"| {n} | Python baseline | {b['rps']:.0f} | | {b['p99']:.2f} | {b['deliveries_per_s']:.0f} | | {b['rss']:.1f} |")
        for (label, _, _), o in zip(shapes, outs):
            print(f"| {n} | {label} | {o['rps']:.0f} | {o['rps'] / b['rps']:.1f}x | {o['p99']:.2f} "
                  f"| {o['deliveries_per_s']:.0f} | {o['deliveries_per_s'] / b['deliveries_per_s']:.1f}x | {o['rss']:.1f} |")


# Conditions that hold for the benchmark's event, and a limit it never reaches (serve
# delivers well under 100,000 a second here): what they cost when they let everything pass.
FEATURE_WHERE = '"data.text" = { prefix = "agent" }, "user_id" = { prefix = "usr_" }, "score" = { gte = 0.5 }'
FEATURE_LIMIT = 'rate_limit = { requests = 100000, per = "1s" }'


def section_features(args, tmp):
    """`where` conditions and a rate limit on the route, each on and off in the same run
    (the headline's shape: no id, default logging, signed)."""
    log("== features")
    variants = [("off (the headline's route)", "", ""),
                ("3 `where` conditions that hold", FEATURE_WHERE, ""),
                ("a rate limit it never reaches (100,000/s)", "", FEATURE_LIMIT),
                ("both", FEATURE_WHERE, FEATURE_LIMIT)]
    rows = []
    for r in range(args.repeat):
        log(f"== features, run {r + 1} of {args.repeat}")
        b = baseline(args.seconds, tmp)
        rows.append((b, [whole_job(args.seconds, tmp=tmp, ids=False, log_level=None, where=w, extra=e)
                         for _, w, e in variants]))
    print(f"\nConditions and rate limits on and off, wrk -t1 -c32 -d{args.seconds}s, events without an id, "
          f"default logging, one signed route to a local sink; {args.repeat} runs, each measuring the baseline "
          f"first (ratios to that run's baseline; \"vs off\" to the same run's route without either):\n")
    print("| run | route | triggers/s | ratio | deliveries/s (whole job) | ratio | vs off | deliveries |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n, (b, outs) in enumerate(rows, 1):
        print(f"| {n} | Python baseline | {b['rps']:.0f} | | {b['deliveries_per_s']:.0f} | | | |")
        off = outs[0]['deliveries_per_s']
        for (label, _, _), o in zip(variants, outs):
            print(f"| {n} | {label} | {o['rps']:.0f} | {o['rps'] / b['rps']:.1f}x "
                  f"| {o['deliveries_per_s']:.0f} | {o['deliveries_per_s'] / b['deliveries_per_s']:.1f}x "
                  f"| {o['deliveries_per_s'] / off:.2f} | {o['deliveries']} |")


class ProbeSink:
    """A target that records when each event first arrived (by the `event` its payload
    names)."""

    def __init__(self):
        import http.server
        import threading
        self.lock = threading.Lock()
        self.arrived = {}
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                with recorder.lock:
                    recorder.arrived.setdefault(body["event"], time.monotonic())
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/probe"


def probes(serve, sink, n, rate):
    """`n` events at `rate` a second (each sent on time, whatever the last one's answer
    took), from one kept-alive connection; returns each event's trigger-to-target
    milliseconds (None for one that never arrived) and the trigger latencies."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", serve.port, timeout=30)
    sent, trigger_ms = {}, []
    start = time.monotonic()
    for i in range(n):
        due = start + i / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        event = f"probe_{i}"
        body = json.dumps({"id": event, "event_type": "intent", "name": "probe", "user_id": "usr_1",
                           "session_id": f"sess_{i}", "data": {"text": "agent please"}})
        t0 = time.monotonic()
        conn.request("POST", "/api/v2/webhooks/trigger", body,
                     {"content-type": "application/json", "x-api-key": KEY})
        resp = conn.getresponse()
        resp.read()
        trigger_ms.append((time.monotonic() - t0) * 1000)
        if resp.status != 202:
            raise SystemExit(f"probe {i}: {resp.status}")
        sent[event] = t0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with sink.lock:
            if len(sink.arrived) >= n:
                break
        time.sleep(0.05)
    with sink.lock:
        return [((sink.arrived[e] - t0) * 1000 if e in sink.arrived else None) for e, t0 in sent.items()], trigger_ms


def section_tail(args, tmp):
    """The slowest of 300 events at 50/s right after a burst: wrk pumps `--burst` seconds of
    triggers (about 100,000 at serve's rate) into one route to the fast sink; once every
    delivery has arrived, 300 probe events of another route (a Python target recording each
    arrival) go in at 50 a second. The same probes into a fresh serve are the reference."""
    log("== tail")
    rows = []
    # (burst first, seconds from the burst's start to the probes): the probes right after
    # the burst, and with --expiry also as the burst's deduplication ids expire (the
    # queue keeps each id five minutes), a run of five minutes.
    cases = [(False, 0), (True, 0)] + ([(True, 299)] if args.expiry else [])
    for r in range(args.repeat):
        for after_burst, probe_at in cases:
            sink, probe_sink = Sink(), ProbeSink()
            routes = routes_file(sink.url) + (
                f'[[route]]\nname = "probe"\ntarget_url = "{probe_sink.url}"\n'
                "template = '{\"event\": {{ event.id | tojson }}}'\n"
                'triggers = [{ event_type = "intent", name = "probe" }]\n')
            serve = Serve(routes)
            burst = 0
            if after_burst:
                script = os.path.join(tmp, "burst.lua")
                wrk_script(script, 0, f"burst{int(time.time() * 1000)}_")
                burst_start = time.time()
                burst = wrk(serve.trigger_url, args.burst, script)["total"]
                wait_delivered(sink, burst)
                if probe_at:
                    log(f"   waiting until {probe_at} s after the burst's start")
                    time.sleep(max(0.0, burst_start + probe_at - time.time()))
            latencies, trigger_ms = probes(serve, probe_sink, 300, 50)
            disk = serve.disk_mb()
            serve.stop()
            sink.stop()
            probe_sink.server.shutdown()
            arrived = sorted(v for v in latencies if v is not None)
            slowest = max(range(len(latencies)), key=lambda i: latencies[i] or 0)
            rows.append((r + 1, burst, probe_at, len(arrived), arrived, sorted(trigger_ms), disk, slowest))
    print(f"\n300 events at 50/s (one connection), trigger to target, signed; after a burst of wrk -c32 "
          f"-d{args.burst}s into the same serve (every burst delivery arrived first), and into a fresh serve:\n")
    print("| run | burst before | probes from the burst's start | arrived | trigger to target p50 / p99 / max ms "
          "| slowest (0 = first) | trigger p99 / max ms | on disk MB after |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run, burst, probe_at, n, arrived, trig, disk, slowest in rows:
        def p(v, q):
            return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))] if v else float("nan")
        when = "-" if not burst else f"{probe_at} s" if probe_at else "once delivered"
        print(f"| {run} | {burst} | {when} | {n} of 300 | {p(arrived, 50):.1f} / {p(arrived, 99):.1f} / {max(arrived or [0]):.1f} | #{slowest} "
              f"| {p(trig, 99):.1f} / {max(trig):.1f} | {disk:.0f} |")


def section_sizes(args, tmp):
    log("== sizes")
    print(f"\nEvent size (the baseline's event padded in `data.pad`), wrk -c32 -d{args.seconds}s into serve, one route:\n")
    print("| event | triggers/s | p99 ms | deliveries/s (whole job) | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for label, pad in (("0.1 KiB", 0), ("4 KiB", 4 * 1024 - 150), ("32 KiB", 32 * 1024 - 150), ("60 KiB", 60 * 1024 - 150)):
        o = whole_job(args.seconds, pad=pad, tmp=tmp)
        print(f"| {label} | {o['rps']:.0f} | {o['p99']:.2f} | {o['deliveries_per_s']:.0f} | {o['rss']:.1f} |")


def section_routes(args, tmp):
    log("== routes")
    print(f"\nRoutes in the file (one of them fires), wrk -c32 -d{args.seconds}s into serve:\n")
    print("| routes | triggers/s | p99 ms | deliveries/s (whole job) | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for n in (10, 100, 1000):
        o = whole_job(args.seconds, n_routes=n, tmp=tmp)
        print(f"| {n} | {o['rps']:.0f} | {o['p99']:.2f} | {o['deliveries_per_s']:.0f} | {o['rss']:.1f} |")


def fill(serve, n, tmp):
    """Queues about n triggers with wrk (in 1-second runs until n were accepted)."""
    script = os.path.join(tmp, "fill.lua")
    wrk_script(script, 0, f"fill{int(time.time() * 1000)}_")
    sent = 0
    while sent < n:
        sent += wrk(serve.trigger_url, 1, script)["total"]
    return sent


class Blackhole:
    """A target that is down the slow way: it takes connections and never answers, so the
    deliveries in flight wait out their timeout and everything else stays queued."""

    def __init__(self, port):
        import socket
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(1024)

    def close(self):
        self.sock.close()


def drain(queued_target, tmp):
    """Fills serve's queue with about `queued_target` deliveries while the target is down,
    then restarts serve with the target up; returns (queued, depth, MB on disk,
    deliveries/s of the drain). While the queue fills, serve delivers one at a time
    (`--concurrency 1`) into a target that never answers, so all but one stay queued (and
    the circuit breaker never sees enough failures to open). The rate counts from serve's
    restart until every delivery but that one has arrived."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    hole = Blackhole(port)
    routes = routes_file(url)
    serve = Serve(routes, extra=("--concurrency", "1", "--grace", "1"))
    queued = fill(serve, queued_target, tmp)
    h = serve.health()["queue"]
    disk = serve.disk_mb()
    serve.stop(keep=True)
    hole.close()
    sink = Sink(port)
    t0 = time.time()
    serve = Serve(routes, reuse=serve.dir)
    s = wait_delivered(sink, queued - 1, timeout=1200)
    rate = s["count"] / (s["last_ms"] / 1000 - t0)
    serve.stop()
    sink.stop()
    return queued, h["visible"] + h["in_flight"], disk, rate


def section_backlog(args, tmp):
    log("== backlog")
    small = drain(args.backlog // 20, tmp)
    large = drain(args.backlog, tmp)
    print(f"\nDrain rate by backlog: triggers queued by wrk while the target took connections and never "
          f"answered, then serve restarted with the target up; deliveries/s from the restart until all "
          f"had arrived:\n")
    print("| queued | in the queue (health) | on disk MB | deliveries/s | vs the small queue |")
    print("|---:|---:|---:|---:|---:|")
    for q, depth, disk, rate in (small, large):
        print(f"| {q} | {depth} | {disk:.0f} | {rate:.0f} | {rate / small[3]:.0%} |")


def check_fresh(binary):
    """Refuses a binary older than the sources it is built from: a stale one would be
    measured without a word."""
    if not os.path.exists(binary):
        raise SystemExit(f"{binary} is missing: cargo build --release -p routerctl --bin routerctl")
    built = os.path.getmtime(binary)
    for top in ["shared", "functions", "Cargo.toml", "Cargo.lock"]:
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)) if os.path.isdir(os.path.join(ROOT, top)) \
                else [(ROOT, [], [top])]:
            for f in files:
                path = os.path.join(dirpath, f)
                if (f.endswith((".rs", ".toml", ".lock"))) and "/tests/" not in path and os.path.getmtime(path) > built:
                    raise SystemExit(f"{binary} is older than {os.path.relpath(path, ROOT)}: rebuild it "
                                     "(scripts/bench.sh serve does)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--backlog", type=int, default=100_000)
    ap.add_argument("--burst", type=int, default=6, help="seconds of wrk before the tail section's probes")
    ap.add_argument("--expiry", action="store_true",
                    help="the tail section also probes as the burst's deduplication ids expire (5 min a run)")
    ap.add_argument("--repeat", type=int, default=5, help="runs of the serve section (the median is reported)")
    ap.add_argument("--bin", help="the routerctl to measure (default: target/release/routerctl, which must be "
                    "newer than its sources); e.g. a copy of an earlier build, to compare two in turn")
    ap.add_argument("sections", nargs="*", default=["serve", "sizes", "routes", "backlog"])
    args = ap.parse_args()
    global ROUTERCTL
    if args.bin:
        ROUTERCTL = os.path.abspath(args.bin)
    else:
        check_fresh(ROUTERCTL)
    tmp = tempfile.mkdtemp(prefix="serve-bench-")
    try:
        for s in args.sections:
            globals()[f"section_{s}"](args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
