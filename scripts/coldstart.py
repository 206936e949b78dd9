"""Cold start of a Lambda function binary: the time from process start to its first poll of
the Lambda Runtime API (GET /2018-06-01/runtime/invocation/next), against a minimal local
Runtime API on 127.0.0.1, and the process's peak RSS at that moment. Median of N runs.

usage: python scripts/coldstart.py N BINARY [NAME=VALUE ...]
Prints: "<median ms> <median peak RSS MB>".
"""
import http.server
import os
import statistics
import subprocess
import sys
import threading
import time

from scenario_lib import free_port


def peak_rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def one_run(binary, env):
    polled = threading.Event()

    class RuntimeApi(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.endswith("/runtime/invocation/next"):
                polled.set()
                time.sleep(2)  # hold the long poll; the process is killed meanwhile
            self.send_response(204)
            self.end_headers()

        def do_POST(self):
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args):
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    run_env = dict(os.environ, **env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}",
                   AWS_LAMBDA_FUNCTION_NAME="bench", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
                   AWS_LAMBDA_FUNCTION_VERSION="1", AWS_LAMBDA_LOG_FORMAT="JSON")
    start = time.perf_counter()
    proc = subprocess.Popen([binary], env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok = polled.wait(10)
    elapsed = (time.perf_counter() - start) * 1000
    rss = peak_rss_mb(proc.pid)
    proc.kill()
    proc.wait()
    server.shutdown()
    if not ok:
        sys.exit(f"{binary} never polled the Runtime API (exit {proc.returncode})")
    return elapsed, rss


def main():
    n, binary = int(sys.argv[1]), sys.argv[2]
    env = dict(arg.split("=", 1) for arg in sys.argv[3:])
    runs = [one_run(binary, env) for _ in range(n)]
    print(f"{statistics.median(r[0] for r in runs):.1f} {statistics.median(r[1] for r in runs):.1f}")


if __name__ == "__main__":
    main()
