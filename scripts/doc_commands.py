#!/usr/bin/env python3
"""Runs every ```sh command block of README.md and docs/operations.md, in order, the way a
reader would, so the docs and the CLI cannot drift apart.

    .venv/bin/python scripts/doc_commands.py --routerctl target/debug/routerctl

Needs MOTO_ENDPOINT (a moto_server on 127.0.0.1; `make test` starts one) and the aws CLI in
.venv (requirements-dev.txt). functions/routerctl/tests/routerctl/docs.rs runs it in `make test`.

README.md runs on the embedded queue: `make run` is started from the Makefile's own recipe
(with the built binary for `cargo run -p routerctl --`, on a free port instead of 3000),
and its curl blocks go to it. `make test` is the command running this, so it is only
checked to be the Makefile's target that `.ci/run` calls.

docs/operations.md runs against "a deployed stack" on moto: a CloudFormation stack named
as samconfig.toml's dev stack with the resources the commands look up (queues with their
redrive, the stack's secrets, the two functions, the deliver function's event source, the
log groups, the API), and a `routerctl serve` playing the two functions on those SQS
queues and secrets, whose log lines are shipped to the functions' log groups as Lambda
would. A dead letter with the docs' sample id is put in the dead-letter queue before each
block that names it. The only text changed in a block: the `<... output>` and `<UUID>`
placeholders, by the values the reader would paste.

Each block runs in one bash session per file (so variables carry over, as in a terminal),
with `set -euo pipefail`; a block fails on a non-zero exit or when its output lacks what
the docs say it shows (EXPECT below). Exit 1 when any block fails.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scenario_lib import free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
SAMPLE_ID = "dlv_5159977b63bda2ff88ba8d9b7881811c"
REGION = "eu-central-1"

# What a block's output must contain, by a piece of text that identifies the block.
EXPECT = {
    '"name":"handover"': ['"status":"queued"'],
    '"name":"order-status"': ["A-1001"],
    "dlq list": [SAMPLE_ID],
    "dlq show": [SAMPLE_ID, "crm-handoff", "http_status"],
    "dlq redrive": ["Redrove 1 dead letter"],
    "dlq discard": ["Discarded 1 dead letter"],
    "scripts/smoke.sh --stack": ["smoke: delivered."],
    "describe-stacks --stack-name cognigy-webhook-router-dev \\\n    --query \"Stacks[0].Outputs\"": ["DeliveryQueueUrl"],
}


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout}s")


def sh_blocks(path):
    """(line, text) of each ```sh block, dedented as a reader would copy it."""
    text = open(os.path.join(ROOT, path)).read()
    out = []
    for m in re.finditer(r"^([ \t]*)```sh\n(.*?)^[ \t]*```", text, re.S | re.M):
        indent = m.group(1)
        lines = [l[len(indent):] if l.startswith(indent) else l for l in m.group(2).splitlines()]
        out.append((text[: m.start()].count("\n") + 1, "\n".join(lines).strip() + "\n"))
    return out


class Session:
    """One bash session per file; each block is checked on its own."""

    def __init__(self, name, cwd, env, prelude=""):
        self.name, self.cwd, self.env, self.prelude = name, cwd, env, prelude
        self.failures = []
        self.ran = 0

    def run(self, blocks, before_block=None):
        state = os.path.join(self.cwd, "." + self.name.replace("/", "_") + ".env")
        open(state, "w").write(self.prelude)
        for line, block in blocks:
            if before_block:
                before_block(block)
            # Each block continues the previous one's shell (variables, functions, cwd).
            script = (f"set -euo pipefail\nsource {state}\n{block}\n"
                      f"{{ declare -p; declare -f; }} > {state}.next 2>/dev/null || true\n")
            p = subprocess.run(["bash", "-c", script], cwd=self.cwd, env=self.env,
                               input="yes\n" * 20, capture_output=True, text=True, timeout=180)
            self.ran += 1
            where = f"{self.name}:{line}"
            shown = block.strip().splitlines()[0]
            if p.returncode != 0:
                self.failures.append(f"{where} exited {p.returncode}: {shown}\n{p.stdout}{p.stderr}")
                print(f"FAIL {where}: {shown}")
                continue
            if os.path.exists(state + ".next"):
                # Keep only what a shell can source back (read-only and special variables out).
                kept = [l for l in open(state + ".next").read().splitlines(True)
                        if not re.match(r"declare -[a-zA-Z]*r", l)
                        and not re.match(r"declare -[a-zA-Z-]* (BASH\w*|SHELLOPTS|EUID|PPID|UID|SHLVL|_|PWD|OLDPWD"
                                         r"|GROUPS|FUNCNAME|LINENO|DIRSTACK|PIPESTATUS|RANDOM|SECONDS|SRANDOM|EPOCH\w*)[=\s]", l)]
                open(state, "w").write("".join(kept))
            missing = [w for key, wants in EXPECT.items() if key in block
                       for w in wants if w not in p.stdout + p.stderr]
            if missing:
                self.failures.append(f"{where}: output lacks {missing}: {shown}\n{p.stdout}{p.stderr}")
                print(f"FAIL {where}: {shown} (output lacks {missing})")
            else:
                print(f"ok   {where}: {shown}")
            if os.environ.get("DOC_COMMANDS_VERBOSE"):
                print(p.stdout + p.stderr)


def sandbox(routerctl):
    """A working directory with the repo's files a reader uses, and a bin dir whose
    `routerctl` is the built binary and whose `aws` is the one in .venv."""
    work = tempfile.mkdtemp(prefix="doc-commands-")
    for name in ["infra", "scripts", "Makefile", "samconfig.toml"]:
        os.symlink(os.path.join(ROOT, name), os.path.join(work, name))
    shutil.copytree(os.path.join(ROOT, "examples"), os.path.join(work, "examples"))
    bindir = os.path.join(work, ".bin")
    os.mkdir(bindir)
    os.symlink(os.path.abspath(routerctl), os.path.join(bindir, "routerctl"))
    # The real aws CLI, pointed at moto. (Its v1 ignores AWS_ENDPOINT_URL for SQS in most
    # regions: a customization pins the legacy queue.amazonaws.com endpoints.)
    aws = os.path.join(bindir, "aws")
    open(aws, "w").write(f'#!/bin/sh\nexec "{os.path.join(VENV_BIN, "aws")}" --endpoint-url "$AWS_ENDPOINT_URL" "$@"\n')
    os.chmod(aws, 0o755)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("QUEUE_URL", "DEAD_LETTER", "ORDERED_", "SECRET_PREFIX", "AWS_ENDPOINT"))}
    env["PATH"] = bindir + os.pathsep + env["PATH"]
    env["RUST_LOG"] = "info"
    return work, env


def spawn(cmd, cwd, env, log):
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def readme(routerctl):
    work, env = sandbox(routerctl)
    port = free_port()
    # The examples deliver to the demo endpoints on serve's own port: the docs' 3000, moved.
    routes = os.path.join(work, "examples", "routes.toml")
    text = open(routes).read()
    open(routes, "w").write(text.replace("127.0.0.1:3000", f"127.0.0.1:{port}"))
    blocks = sh_blocks("README.md")
    setup_line, setup = blocks[0]
    make = open(os.path.join(ROOT, "Makefile")).read()
    recipe = re.search(r"^run:\n\t(.+)$", make, re.M).group(1)
    assert [l.split()[:2] for l in setup.splitlines()] == [["make", "run"], ["make", "test"]], setup
    assert re.search(r"^test:\n\t\./scripts/test\.sh$", make, re.M), "make test runs scripts/test.sh"
    assert "make test" in open(os.path.join(ROOT, ".ci", "run")).read(), ".ci/run calls make test"
    cmd = recipe.replace("cargo run -p routerctl --", "routerctl") + f" --port {port}"
    print(f"ok   README.md:{setup_line}: make run (its recipe: {cmd}); make test is what runs this")
    serve = spawn(["bash", "-c", cmd], work, env, os.path.join(work, "serve.log"))
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v2/health")
        s = Session("README.md", work, env)
        s.run([(line, b.replace("localhost:3000", f"localhost:{port}")) for line, b in blocks[1:]])
        # The echo block's trigger is delivered within a second, as the README says.
        deadline = time.time() + 5
        while time.time() < deadline:
            echo = urllib.request.urlopen(f"http://127.0.0.1:{port}/demo/echo").read().decode()
            if "agent please" in echo:
                break
            time.sleep(0.2)
        else:
            s.failures.append(f"README.md: the handover trigger never reached /demo/echo: {echo}")
        return s
    finally:
        os.killpg(serve.pid, 15)
        serve.wait()
        shutil.rmtree(work, ignore_errors=True)


def aws_client(service):
    import boto3
    return boto3.client(service, endpoint_url=os.environ["MOTO_ENDPOINT"], region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test")


def create_secrets(stack):
    """The stack's secrets (moto's CloudFormation does not create secrets), named as
    template.yaml names them, with values a deployer has filled in. With `webhook-router`,
    the names a stack of an earlier version used (the upgrade section copies from them)."""
    import base64
    sm = aws_client("secretsmanager")
    for name, value in [("ingest/api-key", os.urandom(20).hex()),
                        ("outbound/signing-key", "whsec_" + base64.b64encode(os.urandom(32)).decode()),
                        ("outbound/crm-token", "crm-token")]:
        try:
            sm.delete_secret(SecretId=f"{stack}/{name}", ForceDeleteWithoutRecovery=True)
        except Exception:
            pass
        sm.create_secret(Name=f"{stack}/{name}", SecretString=value)


def stack_template(port):
    """What the docs' commands look up in the real stack (template.yaml), on moto."""
    fn = lambda: {"Type": "AWS::Lambda::Function", "Properties": {
        "Runtime": "python3.12", "Handler": "index.handler", "Role": {"Fn::GetAtt": ["Role", "Arn"]},
        "Code": {"ZipFile": "def handler(event, context):\n    pass\n"}}}
    base = f"http://127.0.0.1:{port}"
    return {
        "Resources": {
            "DeadLetterQueue": {"Type": "AWS::SQS::Queue"},
            "DeliveryQueue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 30, "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}, "maxReceiveCount": 20}}},
            "OrderedDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {
                "FifoQueue": True, "QueueName": {"Fn::Sub": "${AWS::StackName}-ordered-dlq.fifo"}}},
            "OrderedDeliveryQueue": {"Type": "AWS::SQS::Queue", "Properties": {
                "FifoQueue": True, "QueueName": {"Fn::Sub": "${AWS::StackName}-ordered.fifo"}, "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": ["OrderedDeadLetterQueue", "Arn"]}, "maxReceiveCount": 20}}},
            "Role": {"Type": "AWS::IAM::Role", "Properties": {
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}}},
            "TriggerFunction": fn(),
            "DeliverFunction": fn(),
            "Deliveries": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
                "FunctionName": {"Ref": "DeliverFunction"}, "BatchSize": 10,
                "EventSourceArn": {"Fn::GetAtt": ["DeliveryQueue", "Arn"]}}},
            "TriggerLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {
                "LogGroupName": {"Fn::Sub": "/aws/lambda/${AWS::StackName}/trigger"}}},
            "DeliverLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {
                "LogGroupName": {"Fn::Sub": "/aws/lambda/${AWS::StackName}/deliver"}}},
            # moto has no HTTP API in CloudFormation; a REST API gives `HttpApi` an API id.
            "HttpApi": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "http-api"}},
        },
        "Outputs": {
            "DeliveryQueueUrl": {"Value": {"Ref": "DeliveryQueue"}},
            "DeadLetterQueueUrl": {"Value": {"Ref": "DeadLetterQueue"}},
            "OrderedDeliveryQueueUrl": {"Value": {"Ref": "OrderedDeliveryQueue"}},
            "OrderedDeadLetterQueueUrl": {"Value": {"Ref": "OrderedDeadLetterQueue"}},
            "TriggerUrl": {"Value": f"{base}/api/v2/webhooks/trigger"},
            "HealthUrl": {"Value": f"{base}/api/v2/health"},
        },
    }


def ship_logs(log, stack, stop):
    """Sends serve's lines to the functions' log groups, as Lambda sends its functions'."""
    logs = aws_client("logs")
    groups = [f"/aws/lambda/{stack}/trigger", f"/aws/lambda/{stack}/deliver"]
    for g in groups:
        logs.create_log_stream(logGroupName=g, logStreamName="serve")
    offset = 0
    while not stop.is_set():
        with open(log) as f:
            f.seek(offset)
            lines = [l.rstrip("\n") for l in f.readlines() if l.endswith("\n")]
            offset += sum(len(l.encode()) + 1 for l in lines)
        if lines:
            now = int(time.time() * 1000)
            for g in groups:
                logs.put_log_events(logGroupName=g, logStreamName="serve",
                                    logEvents=[{"timestamp": now, "message": l} for l in lines])
        stop.wait(0.3)


def seed_dead_letter(dlq_url):
    """The docs' sample dead letter, as the deliver function writes one (CONTRACT section 5),
    unless it is there already."""
    sqs = aws_client("sqs")
    seen = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                               MessageAttributeNames=["All"]).get("Messages", [])
    if any(m.get("MessageAttributes", {}).get("delivery_id", {}).get("StringValue") == SAMPLE_ID for m in seen):
        return
    event = {"id": "evt_doc_1", "event_type": "intent", "name": "handover", "score": 0.92,
             "user_id": "usr_1", "session_id": "sess_1", "data": {"text": "agent please"}}
    body = {"v": 1, "delivery_id": SAMPLE_ID, "event_id": "evt_doc_1", "route": "crm-handoff",
            "event": event, "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 720))}
    attrs = {"route": "crm-handoff", "delivery_id": SAMPLE_ID, "failure": "http_status",
             "attempts": "1", "last_status": "404", "last_error": "the target answered 404"}
    sqs.send_message(QueueUrl=dlq_url, MessageBody=json.dumps(body),
                     MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attrs.items()})


def operations(routerctl):
    work, env = sandbox(routerctl)
    stack = tomllib.load(open(os.path.join(ROOT, "samconfig.toml"), "rb"))["dev"]["deploy"]["parameters"]["stack_name"]
    cf = aws_client("cloudformation")
    try:
        cf.delete_stack(StackName=stack)
    except Exception:
        pass
    port = free_port()
    cf.create_stack(StackName=stack, TemplateBody=json.dumps(stack_template(port)))
    create_secrets(stack)
    outputs = {o["OutputKey"]: o["OutputValue"]
               for o in cf.describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]}
    fn = cf.describe_stack_resource(StackName=stack, LogicalResourceId="DeliverFunction")
    mapping = aws_client("lambda").list_event_source_mappings(
        FunctionName=fn["StackResourceDetail"]["PhysicalResourceId"])["EventSourceMappings"][0]["UUID"]
    aws_env = dict(env, AWS_ENDPOINT_URL=os.environ["MOTO_ENDPOINT"], AWS_REGION=REGION,
                   AWS_DEFAULT_REGION=REGION, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                   AWS_PAGER="")
    # The two functions: serve on the stack's queues and secrets, re-reading secrets each second.
    fn_env = dict(aws_env, QUEUE_URL=outputs["DeliveryQueueUrl"], DEAD_LETTER_QUEUE_URL=outputs["DeadLetterQueueUrl"],
                  ORDERED_QUEUE_URL=outputs["OrderedDeliveryQueueUrl"],
                  ORDERED_DEAD_LETTER_QUEUE_URL=outputs["OrderedDeadLetterQueueUrl"], SECRET_PREFIX=f"{stack}/")
    log = os.path.join(work, "functions.log")
    serve = spawn([routerctl, "--routes", "infra/config/routes.toml", "--data-dir", os.path.join(work, "fn-data"),
                   "serve", "--port", str(port), "--secret-reread", "1", "--visibility-timeout", "5"],
                  work, fn_env, log)
    stop = threading.Event()
    shipper = threading.Thread(target=ship_logs, args=(log, stack, stop), daemon=True)
    try:
        wait_http(outputs["HealthUrl"])
        shipper.start()
        blocks = []
        for line, b in sh_blocks("docs/operations.md"):
            for key, value in outputs.items():
                b = b.replace(f"<{key} output>", value)
            blocks.append((line, b.replace("<UUID>", mapping)))
        leftover = [b for _, b in blocks if re.search(r"<[A-Za-z ]+>", b)]
        assert not leftover, f"placeholders this runner does not know: {leftover}"

        def before(block):
            if SAMPLE_ID in block:
                seed_dead_letter(outputs["DeadLetterQueueUrl"])
            if "webhook-router/" in block:
                create_secrets("webhook-router")

        seed_dead_letter(outputs["DeadLetterQueueUrl"])
        s = Session("docs/operations.md", work, aws_env)
        s.run(blocks, before)
        # After the key changes and the upgrade's copy (and the functions' re-read, 1 s here,
        # 5 minutes on AWS) the stack still works end to end, with the keys now in place.
        time.sleep(2.5)
        p = subprocess.run(["bash", "scripts/smoke.sh", "--stack", stack, "--region", REGION, "--wait", "30"],
                           cwd=work, env=aws_env, capture_output=True, text=True)
        if p.returncode != 0 or "smoke: delivered." not in p.stdout:
            s.failures.append(f"after the key changes and the upgrade the smoke check fails:\n{p.stdout}{p.stderr}")
        else:
            print("ok   after the rotations and the upgrade: the smoke check passes with the keys in place")
        return s
    finally:
        stop.set()
        os.killpg(serve.pid, 15)
        serve.wait()
        if os.environ.get("DOC_COMMANDS_VERBOSE"):
            print(open(log).read())
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--routerctl", required=True)
    args = ap.parse_args()
    if "MOTO_ENDPOINT" not in os.environ:
        raise SystemExit("MOTO_ENDPOINT is not set (make test starts moto_server)")
    failures, ran = [], 0
    for part in (readme, operations):
        s = part(os.path.abspath(args.routerctl))
        failures += s.failures
        ran += s.ran
        for f in s.failures:
            print("\n---", f)
    print(f"{ran} command blocks run, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
