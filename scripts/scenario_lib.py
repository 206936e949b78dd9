"""Shared by the scenario scripts (isolation.py, ordering.py): start `routerctl serve` on a
fresh data dir, post triggers, read health, percentiles."""

import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import urllib.request

KEY = "scenario-key"
INGEST = f'[ingest]\nauth = "flows"\nmax_body_kb = 64\n[auth.flows]\ntype = "api_key"\nsecret = "ingest-key"\n'


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_workspace(routes_text):
    """A fresh directory with `routes_text` (after the [ingest] section) and the secrets."""
    work = tempfile.mkdtemp(prefix="scenario-")
    with open(os.path.join(work, "routes.toml"), "w") as f:
        f.write(INGEST + routes_text)
    with open(os.path.join(work, "secrets.toml"), "w") as f:
        f.write(f'"ingest-key" = "{KEY}"\n')
    return work


def start_serve_in(work, binary, extra_args=(), log="error"):
    """Starts serve on `work` (its data dir kept across restarts); returns (process, base
    URL). With `log` other than "error" its stdout stays for the caller to read."""
    proc = subprocess.Popen(
        [binary, "--routes", os.path.join(work, "routes.toml"),
         "--secrets", os.path.join(work, "secrets.toml"),
         "--data-dir", os.path.join(work, "data"),
         "serve", "--port", "0", *extra_args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "RUST_LOG": log},
    )
    for line in proc.stdout:
        m = re.search(r"ready on (http://\S+)", line)
        if m:
            if log == "error":
                threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, m.group(1)
    raise SystemExit("serve did not start")


def start_serve(binary, routes_text, extra_args=()):
    """Starts serve with `routes_text` on a fresh data dir; returns (process, base URL)."""
    return start_serve_in(write_workspace(routes_text), binary, extra_args)


def post(base, body):
    req = urllib.request.Request(
        base + "/api/v2/webhooks/trigger",
        data=body.encode(),
        headers={"content-type": "application/json", "x-api-key": KEY},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, json.loads(resp.read())


def health(base):
    with urllib.request.urlopen(base + "/api/v2/health", timeout=10) as resp:
        return json.loads(resp.read())


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]
