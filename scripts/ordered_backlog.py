#!/usr/bin/env python3
"""Ordered sessions at any backlog, measured as a user runs them: `routerctl serve` with one
ordered route (`ordering = "session"`) whose target answers 503 to one session ("stuck")
and 200 to every other. For each backlog (messages queued behind the stuck session's
failing head: 0, 3,000, 20,000 by default), on a fresh data dir:

1. the backlog is queued (posted with 16 connections) and serve is left alone for a while;
2. serve's CPU while idle (nothing but the stuck head's retries) over `--idle` seconds;
3. `--events` triggers of other sessions, one after another: each trigger's latency, and
   each delivery's latency (trigger sent to the target's arrival).

Prints one Markdown table; the 0 row is the same run's reference. The route's cap on one
session's queue (`max_queued_per_session`) is raised above the largest backlog, and the
breaker is off (the stuck session's 503s would open it for the whole route).

    scripts/ordered_backlog.py [--bin target/release/routerctl] [--backlogs 0,3000,20000]
"""

import argparse
import http.server
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from scenario_lib import health, pct, post, start_serve


class Target:
    """503 to the stuck session, 200 to the others; the first arrival time of each event."""

    def __init__(self):
        self.lock = threading.Lock()
        self.arrived = {}
        self.attempts = 0
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                event = body["event"]
                stuck = event.startswith("stuck-")
                with recorder.lock:
                    recorder.attempts += 1
                    if not stuck:
                        recorder.arrived.setdefault(event, time.monotonic())
                self.send_response(503 if stuck else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def routes(url, cap):
    return (
        "[delivery]\nallow_private_targets = true\ncircuit_breaker = { failures = 0 }\n"
        f'[[route]]\nname = "timeline"\ntarget_url = "{url}"\ntimeout_seconds = 5\n'
        f'ordering = "session"\nmax_queued_per_session = {cap}\n'
        "template = '{\"event\": {{ event.id | tojson }}}'\n"
        'retry = { schedule = ["5s", "5s", "5s", "5s", "5s", "5s", "5s", "5s", "5s", "5s"], max_age = "1h" }\n'
        'triggers = [{ event_type = "intent" }]\n'
    )


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fill(base, n):
    def one(i):
        body = json.dumps({"id": f"stuck-{i}", "event_type": "intent", "session_id": "stuck"})
        status, answer = post(base, body)
        assert status == 202, (status, answer)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(n)))


def measure(binary, backlog, events, idle, settle):
    target = Target()
    serve, base = start_serve(binary, routes(target.url(), max(backlog, 1) + 10))
    try:
        fill(base, backlog)
        queued = health(base)["queue"]
        time.sleep(settle)
        before = cpu_seconds(serve.pid)
        time.sleep(idle)
        idle_cpu = (cpu_seconds(serve.pid) - before) / idle * 100
        sent, trigger_ms = {}, []
        for i in range(events):
            event = f"free-{i}"
            body = json.dumps({"id": event, "event_type": "intent", "session_id": f"sess-{i % 50}"})
            t0 = time.monotonic()
            status, answer = post(base, body)
            trigger_ms.append((time.monotonic() - t0) * 1000)
            assert status == 202, (status, answer)
            sent[event] = t0
            time.sleep(0.01)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with target.lock:
                if all(e in target.arrived for e in sent):
                    break
            time.sleep(0.1)
        with target.lock:
            delivery_ms = [(target.arrived[e] - t0) * 1000 for e, t0 in sent.items() if e in target.arrived]
        return {
            "backlog": backlog,
            "queued": queued["visible"] + queued["in_flight"],
            "idle_cpu": idle_cpu,
            "trigger_p50": pct(trigger_ms, 50),
            "trigger_p99": pct(trigger_ms, 99),
            "delivery_p50": pct(delivery_ms, 50),
            "delivery_p99": pct(delivery_ms, 99),
            "delivered": len(delivery_ms),
            "events": events,
        }
    finally:
        serve.terminate()
        serve.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/routerctl")
    ap.add_argument("--backlogs", default="0,3000,20000")
    ap.add_argument("--events", type=int, default=300)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--settle", type=float, default=3.0)
    args = ap.parse_args()
    rows = [measure(args.bin, int(b), args.events, args.idle, args.settle) for b in args.backlogs.split(",")]
    ref = rows[0]
    print(f"one ordered route, one session's head failing (503) with the backlog behind it; "
          f"{args.events} triggers of 50 other sessions, one after another; idle CPU over {args.idle:.0f} s\n")
    print("| queued behind the head | in the queue (health) | idle CPU % | trigger p50 / p99 ms | "
          "other sessions' delivery p50 / p99 ms | delivered | p50s vs no backlog |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = (f"{r['trigger_p50'] / ref['trigger_p50']:.2f}x / {r['delivery_p50'] / ref['delivery_p50']:.2f}x"
                 if r is not ref else "(reference)")
        print(f"| {r['backlog']} | {r['queued']} | {r['idle_cpu']:.2f} | {r['trigger_p50']:.2f} / {r['trigger_p99']:.2f} | "
              f"{r['delivery_p50']:.2f} / {r['delivery_p99']:.2f} | {r['delivered']} of {r['events']} | {ratio} |")


if __name__ == "__main__":
    main()
