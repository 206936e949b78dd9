#!/usr/bin/env python3
"""Target isolation, measured as a user runs it: `routerctl serve`, 3,000 events over 20
routes (each event fires 2, so 6,000 deliveries), 2 routes whose target holds every request
past the route's 1 s timeout, 1 route whose port refuses connections, the other 17 answering
503 to 30 % of requests; every route retries five times, 1 s apart.

It prints one Markdown table: how long after the last accepted trigger every delivery was
settled (delivered or dead-lettered, none lost), and the healthy routes' trigger-to-target
latency (first request, and the successful one), with the circuit breaker on and off.

    scripts/isolation.py [--bin target/release/routerctl] [--events 3000] [--runs on,off,failures=10]

Needs only Python 3 (the targets are http.server threads on 127.0.0.1).
"""

import argparse
import http.server
import json
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from scenario_lib import free_port, health, pct, post, start_serve

ROUTES = 20
SLOW = {0, 1}  # hold every request past the 1 s timeout
DEAD = {2}  # the port refuses connections
FAIL_RATE = 0.3


class Recorder:
    """What the targets saw: per delivery id, the first arrival and the successful one."""

    def __init__(self):
        self.lock = threading.Lock()
        self.first = {}
        self.delivered = {}
        self.requests = {}

    def saw(self, route, delivery_id, ok):
        now = time.monotonic()
        with self.lock:
            self.requests[route] = self.requests.get(route, 0) + 1
            self.first.setdefault(delivery_id, now)
            if ok:
                self.delivered.setdefault(delivery_id, now)


def target(route, recorder, slow, rng):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("content-length", 0))
            self.rfile.read(length)
            delivery_id = self.headers.get("webhook-id", "")
            if slow:
                recorder.saw(route, delivery_id, False)
                time.sleep(2.0)
                status = 200
            else:
                status = 503 if rng.random() < FAIL_RATE else 200
                recorder.saw(route, delivery_id, status == 200)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def routes_file(urls, failures):
    breaker = "" if failures is None else f"circuit_breaker = {{ failures = {failures} }}\n"
    lines = ["[delivery]\nallow_private_targets = true\n" + breaker]
    for k in range(ROUTES):
        # Event name n<j> fires routes j and j+7: every event fires two routes.
        names = [f"n{k}", f"n{(k - 7) % ROUTES}"]
        triggers = ", ".join(f'{{ event_type = "custom", name = "{n}" }}' for n in names)
        lines.append(
            f'[[route]]\nname = "route-{k:02}"\ntarget_url = "{urls[k]}"\ntimeout_seconds = 1\n'
            f"template = '{{\"event\": {{{{ event.id | tojson }}}}}}'\n"
            f'retry = {{ schedule = ["1s", "1s", "1s", "1s", "1s"], max_age = "1h" }}\n'
            f"triggers = [{triggers}]\n"
        )
    return "\n".join(lines)


def run(binary, events, variant, seed):
    """`variant`: `on` (the defaults), `off`, or `failures=N`."""
    failures = {"on": None, "off": 0}.get(variant)
    if variant.startswith("failures="):
        failures = int(variant.split("=", 1)[1])
    rng = random.Random(seed)
    recorder = Recorder()
    servers, urls = [], []
    for k in range(ROUTES):
        if k in DEAD:
            urls.append(f"http://127.0.0.1:{free_port()}/hook")
            continue
        s = target(f"route-{k:02}", recorder, k in SLOW, random.Random(rng.random()))
        servers.append(s)
        urls.append(f"http://127.0.0.1:{s.server_address[1]}/hook")
    serve, base = start_serve(binary, routes_file(urls, failures))

    accepted = {}  # delivery id -> (route, accepted at)

    def one(i):
        body = json.dumps({"id": f"evt_{i}", "event_type": "custom", "name": f"n{i % ROUTES}"})
        status, answer = post(base, body)
        at = time.monotonic()
        assert status == 202, (status, answer)
        return [(d["delivery_id"], d["route"], at) for d in answer["deliveries"]]

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        for deliveries in pool.map(one, range(events)):
            for delivery_id, route, at in deliveries:
                accepted[delivery_id] = (route, at)
    last_trigger = time.monotonic()
    total = len(accepted)

    settled_after = None
    h = {}
    while time.monotonic() - last_trigger < 300:
        h = health(base)
        q = h["queue"]
        if q["visible"] + q["in_flight"] == 0 and q["dead_letter"] + len(recorder.delivered) >= total:
            settled_after = time.monotonic() - last_trigger
            break
        time.sleep(0.25)
    serve.terminate()
    serve.wait(timeout=30)
    for s in servers:
        s.shutdown()

    healthy = {f"route-{k:02}" for k in range(ROUTES) if k not in SLOW | DEAD}
    first, done = [], []
    for delivery_id, (route, at) in accepted.items():
        if route not in healthy:
            continue
        if delivery_id in recorder.first:
            first.append(max(0.0, recorder.first[delivery_id] - at))
        if delivery_id in recorder.delivered:
            done.append(max(0.0, recorder.delivered[delivery_id] - at))
    bad_requests = sum(recorder.requests.get(f"route-{k:02}", 0) for k in SLOW)
    return {
        "breaker": {"on": "on (defaults: 5 failures)", "off": "off"}.get(variant, f"on, {variant}"),
        "triggers_s": last_trigger - started,
        "deliveries": total,
        "settled_after_s": settled_after,
        "delivered": len(recorder.delivered),
        "dead_letters": h.get("queue", {}).get("dead_letter"),
        "first_p50": pct(first, 50), "first_p99": pct(first, 99),
        "done_p50": pct(done, 50), "done_p99": pct(done, 99),
        "slow_requests": bad_requests,
        "healthy_reached": len(first),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/routerctl")
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--runs", default="on,off,failures=10")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    results = [run(args.bin, args.events, r, args.seed) for r in args.runs.split(",")]
    fmt = lambda v: "not settled in 300 s" if v is None else f"{v:.1f}"
    print(f"{args.events} events, {results[0]['deliveries']} deliveries, `{' '.join(sys.argv)}`\n")
    print("| breaker | triggers accepted in s | all settled s after the last trigger | delivered | dead-lettered "
          "| healthy: first request p50 / p99 s | healthy: delivered p50 / p99 s | requests to the slow targets |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['breaker']} | {r['triggers_s']:.1f} | {fmt(r['settled_after_s'])} | {r['delivered']} "
              f"| {r['dead_letters']} | {r['first_p50']:.2f} / {r['first_p99']:.2f} "
              f"| {r['done_p50']:.2f} / {r['done_p99']:.2f} | {r['slow_requests']} |")


if __name__ == "__main__":
    main()
