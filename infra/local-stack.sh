#!/usr/bin/env bash
# Creates, on a local moto_server, what the SAM template creates on AWS: the delivery queue
# with its redrive to the dead-letter queue, and the secrets of a routes file. For manual
# runs of the functions or of `routerctl` against SQS:
#
#   .venv/bin/moto_server -H 127.0.0.1 -p 5000 &
#   eval "$(infra/local-stack.sh http://127.0.0.1:5000)"      # prints the exports
#   cargo run -p routerctl -- serve --routes infra/config/routes.toml   # now on SQS + Secrets Manager
#
# Options (environment): MAX_RECEIVE_COUNT (20), VISIBILITY_TIMEOUT (540), PREFIX (local/: the
# secrets are created as <PREFIX>ingest/api-key..., as a stack names them after itself).
set -euo pipefail
ENDPOINT=${1:?usage: infra/local-stack.sh http://127.0.0.1:PORT}
case "$ENDPOINT" in http://127.0.0.1:*|http://localhost:*) ;; *) echo "only a local moto_server, please" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
export AWS_ENDPOINT_URL="$ENDPOINT" AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test} AWS_REGION=${AWS_REGION:-us-east-1}
PY=.venv/bin/python
[ -x "$PY" ] || { echo "run 'make test' once to create .venv" >&2; exit 2; }
"$PY" - "$ENDPOINT" <<'PYEOF'
import os, sys, boto3
ep = sys.argv[1]
prefix = os.environ.get("PREFIX", "local/")
region = os.environ["AWS_REGION"]
sqs = boto3.client("sqs", endpoint_url=ep, region_name=region)
sm = boto3.client("secretsmanager", endpoint_url=ep, region_name=region)
dlq = sqs.create_queue(QueueName="webhook-router-dlq", Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
q = sqs.create_queue(QueueName="webhook-router-deliveries", Attributes={
    "VisibilityTimeout": os.environ.get("VISIBILITY_TIMEOUT", "540"),
    "MessageRetentionPeriod": "345600",
    "RedrivePolicy": '{"deadLetterTargetArn":"%s","maxReceiveCount":"%s"}' % (arn, os.environ.get("MAX_RECEIVE_COUNT", "20")),
})["QueueUrl"]
for name, value in [(prefix + "ingest/api-key", "local-ingest-key"),
                    (prefix + "outbound/signing-key", "whsec_bG9jYWwtc2lnbmluZy1rZXktZm9yLW1vdG8="),
                    (prefix + "outbound/crm-token", "local-crm-token")]:
    try:
        sm.create_secret(Name=name, SecretString=value)
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=name, SecretString=value)
print(f"export AWS_ENDPOINT_URL={ep} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION={os.environ['AWS_REGION']}")
print(f"export QUEUE_URL={q} DEAD_LETTER_QUEUE_URL={dlq} SECRET_PREFIX={prefix}")
PYEOF
