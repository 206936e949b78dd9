#!/usr/bin/env python3
"""Target isolation, measured as a user runs it: `routerctl serve`, 3,000 events over 20
routes (each event fires 2, so 6,000 deliveries), every route retrying five times 1 s apart:
2 routes whose path holds every request past the route's 1 s timeout, 1 route to a port that
refuses connections, the other 17 answering 503 to 30 % of requests at random. `serve` is
killed with SIGKILL twice while the triggers come in (and restarted on the same data dir;
a trigger the kill cut off is posted again, as a caller would).

Two layouts: `routes` (one server per route) and `host` (all 20 routes' paths on one
server, the refusing port beside it), each with the circuit breaker on and off. It prints
one Markdown table: what was delivered, dead-lettered and lost (by delivery id), how long
after the last accepted trigger everything was settled, the requests that reached the
timing-out paths and the refusing port, how often a healthy route's delivery was made to
wait by a circuit, and how long the healthy routes' deliveries took from their trigger's
202 to their first request.

    scripts/isolation.py [--bin target/release/routerctl] [--events 3000] [--layouts routes,host]
                         [--breaker on,off] [--kills 2] [--visibility-timeout S]

(`--visibility-timeout` is serve's: how long a delivery in flight at a kill -9 stays hidden
before it is delivered again; serve's default is 60 s.)

Needs only Python 3 (the targets are http.server threads on 127.0.0.1).
"""

import argparse
import http.server
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from scenario_lib import free_port, health, pct, post, start_serve_in, write_workspace

ROUTES = 20
SLOW = {0, 1}  # hold every request past the 1 s timeout
DEAD = {2}  # the port refuses connections
FAIL_RATE = 0.3


def route_name(k):
    return f"route-{k:02}"


class Recorder:
    """What the targets saw: requests per route, each delivery id's first request, and
    the delivery ids answered 2xx."""

    def __init__(self):
        self.lock = threading.Lock()
        self.delivered = set()
        self.first = {}
        self.requests = {}

    def saw(self, route, delivery_id, ok):
        now = time.monotonic()
        with self.lock:
            self.requests[route] = self.requests.get(route, 0) + 1
            self.first.setdefault(delivery_id, now)
            if ok:
                self.delivered.add(delivery_id)


def server(recorder, rng, slow_paths, route_of_path):
    """One HTTP server answering `route_of_path(path)`'s requests as its route does."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("content-length", 0))
            self.rfile.read(length)
            delivery_id = self.headers.get("webhook-id", "")
            route = route_of_path(self.path)
            if self.path in slow_paths:
                recorder.saw(route, delivery_id, False)
                time.sleep(2.0)
                status = 200
            else:
                with recorder.lock:
                    fail = rng.random() < FAIL_RATE
                status = 503 if fail else 200
                recorder.saw(route, delivery_id, status == 200)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

        def handle_error(self, request, client_address):
            pass  # a client that gave up (the route's timeout) resets the connection

    s = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s


def targets(layout, recorder, rng):
    """The servers and each route's URL."""
    dead_url = f"http://127.0.0.1:{free_port()}/refused"
    servers, urls = [], []
    if layout == "host":
        slow_paths = {f"/{route_name(k)}" for k in SLOW}
        s = server(recorder, rng, slow_paths, lambda path: path.strip("/"))
        servers.append(s)
        for k in range(ROUTES):
            port = s.server_address[1]
            urls.append(dead_url if k in DEAD else f"http://127.0.0.1:{port}/{route_name(k)}")
    else:
        for k in range(ROUTES):
            if k in DEAD:
                urls.append(dead_url)
                continue
            name = route_name(k)
            s = server(recorder, random.Random(rng.random()), {"/hook"} if k in SLOW else set(), lambda _p, n=name: n)
            servers.append(s)
            urls.append(f"http://127.0.0.1:{s.server_address[1]}/hook")
    return servers, urls


def routes_file(urls, breaker_on):
    lines = ["[delivery]\nallow_private_targets = true\n" + ("" if breaker_on else "circuit_breaker = { failures = 0 }\n")]
    for k in range(ROUTES):
        # Event name n<j> fires routes j and j+7: every event fires two routes.
        names = [f"n{k}", f"n{(k - 7) % ROUTES}"]
        triggers = ", ".join(f'{{ event_type = "custom", name = "{n}" }}' for n in names)
        lines.append(
            f'[[route]]\nname = "{route_name(k)}"\ntarget_url = "{urls[k]}"\ntimeout_seconds = 1\n'
            f"template = '{{\"event\": {{{{ event.id | tojson }}}}}}'\n"
            f'retry = {{ schedule = ["1s", "1s", "1s", "1s", "1s"], max_age = "1h" }}\n'
            f"triggers = [{triggers}]\n"
        )
    return "\n".join(lines)


class Serve:
    """`routerctl serve` on one data dir, restartable; counts its attempts per route from
    its log (a refused connection reaches no server that could count it)."""

    ATTEMPT = re.compile(r"(attempt failed; retrying|giving up; copying|\bdelivered\b).*route=(\S+)")
    WAIT = re.compile(r"waiting; no attempt spent.*route=(\S+)")

    def __init__(self, binary, work, extra_args):
        self.binary, self.work, self.extra_args = binary, work, extra_args
        self.lock = threading.Lock()
        self.attempts, self.waits = {}, {}
        self.start()

    def start(self):
        self.proc, self.base = start_serve_in(self.work, self.binary, self.extra_args, log="info")
        threading.Thread(target=self.read, args=(self.proc,), daemon=True).start()

    def read(self, proc):
        for line in proc.stdout:
            m = self.ATTEMPT.search(line)
            w = self.WAIT.search(line) if not m else None
            with self.lock:
                # A delivery given up while its circuit was open made no request.
                if m and "giving up" in m.group(1) and "circuit_open" in line:
                    continue
                if m:
                    self.attempts[m.group(2)] = self.attempts.get(m.group(2), 0) + 1
                elif w:
                    self.waits[w.group(1)] = self.waits.get(w.group(1), 0) + 1

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.start()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def dead_letter_ids(binary, work):
    out = subprocess.run(
        [binary, "--routes", os.path.join(work, "routes.toml"), "--secrets", os.path.join(work, "secrets.toml"),
         "--data-dir", os.path.join(work, "data"), "dlq", "list", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout
    return {json.loads(line)["delivery_id"] for line in out.splitlines() if line.strip()}


def run(binary, events, layout, breaker_on, seed, kills, extra_args):
    rng = random.Random(seed)
    recorder = Recorder()
    servers, urls = targets(layout, recorder, rng)
    work = write_workspace(routes_file(urls, breaker_on))
    serve = Serve(binary, work, extra_args)

    accepted = {}  # delivery id -> (route, when its trigger was answered 202)
    kill_at = {events * k // (kills + 1) for k in range(1, kills + 1)}
    reposted = 0

    def one(i):
        nonlocal reposted
        body = json.dumps({"id": f"evt_{i}", "event_type": "custom", "name": f"n{i % ROUTES}"})
        while True:
            try:
                status, answer = post(serve.base, body)
                if status == 202:
                    at = time.monotonic()
                    return [(d["delivery_id"], d["route"], at) for d in answer["deliveries"]]
            except OSError:
                pass
            reposted += 1
            time.sleep(0.05)

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        futures = []
        for i in range(events):
            if i in kill_at:
                for f in futures:
                    for d, route, at in f.result():
                        accepted.setdefault(d, (route, at))
                futures = []
                serve.kill9()
            futures.append(pool.submit(one, i))
        for f in futures:
            for d, route, at in f.result():
                accepted.setdefault(d, (route, at))
    last_trigger = time.monotonic()

    settled_after = None
    while time.monotonic() - last_trigger < 300:
        q = health(serve.base)["queue"]
        if q["visible"] + q["in_flight"] == 0:
            settled_after = time.monotonic() - last_trigger
            break
        time.sleep(0.25)
    serve.stop()
    for s in servers:
        s.shutdown()
    ids = set(accepted)
    dead = dead_letter_ids(binary, work) & ids
    delivered = recorder.delivered & ids
    lost = ids - delivered - dead
    healthy = {route_name(k) for k in range(ROUTES) if k not in SLOW | DEAD}
    # How long a healthy route's delivery took to reach its target after its 202.
    waited = [recorder.first[d] - at for d, (route, at) in accepted.items()
              if route in healthy and d in recorder.first]
    with serve.lock:
        dead_port_tries = sum(serve.attempts.get(route_name(k), 0) for k in DEAD)
        healthy_waits = sum(v for r, v in serve.waits.items() if r in healthy)
    return {
        "layout": {"routes": "one server per route", "host": "20 routes on one host"}[layout],
        "breaker": "on" if breaker_on else "off",
        "deliveries": len(ids),
        "delivered": len(delivered),
        "dead": len(dead),
        "lost": len(lost),
        "settled_after_s": settled_after,
        "slow_requests": sum(recorder.requests.get(route_name(k), 0) for k in SLOW),
        "dead_port_tries": dead_port_tries,
        "healthy_waits": healthy_waits,
        "healthy_p50": pct(waited, 50),
        "healthy_p99": pct(waited, 99),
        "reposted": reposted,
        "triggers_s": last_trigger - started,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/routerctl")
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--layouts", default="routes,host")
    ap.add_argument("--breaker", default="on,off")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--kills", type=int, default=2)
    ap.add_argument("--visibility-timeout", type=int)
    args = ap.parse_args()
    extra = () if args.visibility_timeout is None else ("--visibility-timeout", str(args.visibility_timeout))
    results = [
        run(args.bin, args.events, layout, b == "on", args.seed, args.kills, extra)
        for layout in args.layouts.split(",")
        for b in args.breaker.split(",")
    ]
    fmt = lambda v: "not settled in 300 s" if v is None else f"{v:.1f}"
    print(f"{args.events} events, {results[0]['deliveries']} deliveries, serve killed -9 {args.kills} times, `{' '.join(sys.argv)}`\n")
    print("| layout | breaker | delivered | dead-lettered | lost | settled s after the last trigger "
          "| requests to the 2 timing-out paths | attempts at the refusing port | healthy deliveries made to wait "
          "| healthy: 202 to first request p50 / p99 s | triggers took s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['layout']} | {r['breaker']} | {r['delivered']} | {r['dead']} | {r['lost']} "
              f"| {fmt(r['settled_after_s'])} | {r['slow_requests']} | {r['dead_port_tries']} | {r['healthy_waits']} "
              f"| {r['healthy_p50']:.2f} / {r['healthy_p99']:.2f} | {r['triggers_s']:.1f} |")


if __name__ == "__main__":
    main()
