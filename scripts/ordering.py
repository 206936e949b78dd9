#!/usr/bin/env python3
"""Ordered routes, measured as a user runs them: `routerctl serve`, 200 sessions x 20 events
(the events of one session sent one after another, different sessions at the same time),
every event firing an ordered route (`ordering = "session"`) and an unordered one, both
targets answering 503 to 30 % of requests; five retries 1 s apart; the circuit breaker off.

Prints one Markdown table: per route, the deliveries and dead letters, how long until all
were settled, deliveries/s, and for the ordered route whether every session's deliveries
reached the target in trigger order (retries included: a later event never arrives before
an earlier one of its session was delivered or dead-lettered).

    scripts/ordering.py [--bin target/release/routerctl] [--sessions 200] [--events 20]
"""

import argparse
import http.server
import json
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from scenario_lib import health, post, start_serve

FAIL_RATE = 0.3


class Target:
    """A target answering 503 to FAIL_RATE of requests; keeps every arrival in order."""

    def __init__(self, seed):
        self.lock = threading.Lock()
        self.arrivals = []  # (session, event index, delivery id, ok, time)
        rng = random.Random(seed)
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                with recorder.lock:
                    ok = rng.random() >= FAIL_RATE
                    session, n = body["event"].rsplit("-", 1)
                    recorder.arrivals.append(
                        (session, int(n), self.headers.get("webhook-id"), ok, time.monotonic())
                    )
                self.send_response(200 if ok else 503)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def delivered(self):
        with self.lock:
            return {a[2]: a[4] for a in self.arrivals if a[3]}


def routes(ordered_url, plain_url):
    route = (
        '[[route]]\nname = "{name}"\ntarget_url = "{url}"\ntimeout_seconds = 5\n{extra}'
        "template = '{{\"event\": {{{{ event.id | tojson }}}}}}'\n"
        'retry = {{ schedule = ["1s", "1s", "1s", "1s", "1s"], max_age = "1h" }}\n'
        'triggers = [{{ event_type = "intent" }}]\n'
    )
    # The breaker is off: at 30 % random 503s it would open now and then (see the isolation
    # section of BENCHMARKS.md); this run measures ordering alone.
    return (
        "[delivery]\nallow_private_targets = true\ncircuit_breaker = { failures = 0 }\n"
        + route.format(name="ordered", url=ordered_url, extra='ordering = "session"\n')
        + route.format(name="unordered", url=plain_url, extra="")
    )


def in_order(arrivals):
    """Sessions whose arrivals (retries included) ever go back to an earlier event."""
    last, bad = {}, set()
    for session, n, _, _, _ in arrivals:
        if n < last.get(session, -1):
            bad.add(session)
        last[session] = max(n, last.get(session, -1))
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/routerctl")
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--events", type=int, default=20)
    args = ap.parse_args()
    ordered, plain = Target(1), Target(2)
    serve, base = start_serve(args.bin, routes(ordered.url(), plain.url()))
    ids = {"ordered": set(), "unordered": set()}
    started = time.monotonic()

    def session(s):
        out = []
        for n in range(args.events):
            body = json.dumps({"id": f"s{s}-{n}", "event_type": "intent", "session_id": f"sess-{s}"})
            status, answer = post(base, body)
            assert status == 202, (status, answer)
            out.extend((d["route"], d["delivery_id"]) for d in answer["deliveries"])
        return out

    with ThreadPoolExecutor(16) as pool:
        for deliveries in pool.map(session, range(args.sessions)):
            for route, delivery_id in deliveries:
                ids[route].add(delivery_id)
    triggered = time.monotonic() - started

    settled = None
    while time.monotonic() - started < 600:
        q = health(base)["queue"]
        if q["visible"] + q["in_flight"] == 0:
            settled = time.monotonic()
            break
        time.sleep(0.25)
    dead = health(base)["queue"]["dead_letter"]
    serve.terminate()
    serve.wait(timeout=30)

    print(f"{args.sessions} sessions x {args.events} events, 30 % 503s, `{' '.join(sys.argv)}`; "
          f"triggers accepted in {triggered:.1f} s; {dead} dead letters in all\n")
    print("| route | deliveries | delivered | last delivery after s | deliveries/s | sessions out of order |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, target in (("ordered", ordered), ("unordered", plain)):
        delivered = target.delivered()
        mine = [t for d, t in delivered.items() if d in ids[name]]
        last = max(mine) - started if mine else float("nan")
        bad = len(in_order(target.arrivals))
        print(f"| {name} | {len(ids[name])} | {len(mine)} | {last:.1f} | {len(mine) / last:.0f} | {bad} |")
    total = len(ids["ordered"]) + len(ids["unordered"])
    delivered = len(ordered.delivered()) + len(plain.delivered())
    print(f"\nlost (neither delivered nor dead-lettered): {total - delivered - dead}")
    if settled is None:
        print("\nNOT SETTLED within 600 s")


if __name__ == "__main__":
    main()
