#!/usr/bin/env bash
# The smoke check: one test trigger, seen arriving at the end of the whole path.
#
#   scripts/smoke.sh --stack cognigy-webhook-router-dev [--region eu-central-1]
#       a deployed stack: reads its TriggerUrl output and its ingest key with the aws CLI,
#       and watches the trigger function's log group for the arrival.
#   scripts/smoke.sh --url http://127.0.0.1:3000 --key local-demo-key --log serve.log
#       a local `routerctl serve` whose output goes to serve.log.
#
# It posts {"event_type": "custom", "name": "router-smoke"} with a fresh id. The routes
# file's `router-smoke` route (infra/config/routes.toml, examples/routes.toml) delivers it
# through the queue and the deliver side, signed, to the router's own sink
# (POST /api/v2/webhooks/smoke), which verifies the signature and logs
# "smoke delivery received". Exit 0 once that line is seen; 1 with what went wrong
# otherwise: the trigger's answer, or the delivery's log lines, as soon as the deliver side
# gives the delivery up (dead letter) or once --wait seconds (default 90) pass without
# an arrival.
set -euo pipefail

STACK="" REGION="" URL="" KEY="" LOG="" WAIT=90
while [ $# -gt 0 ]; do
  case "$1" in
    --stack) STACK=$2; shift 2 ;;
    --region) REGION=$2; shift 2 ;;
    --url) URL=$2; shift 2 ;;
    --key) KEY=$2; shift 2 ;;
    --log) LOG=$2; shift 2 ;;
    --wait) WAIT=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "smoke: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
fail() { echo "smoke: $*" >&2; exit 1; }
json() { python3 -c "import json,sys; v=json.load(sys.stdin); print($1)"; }

if [ -n "$STACK" ]; then
  command -v aws >/dev/null || fail "needs the aws CLI (and credentials for the stack's account)"
  AWS=(aws ${REGION:+--region "$REGION"})
  URL=$("${AWS[@]}" cloudformation describe-stacks --stack-name "$STACK" \
    --query "Stacks[0].Outputs[?OutputKey=='TriggerUrl'].OutputValue" --output text)
  URL=${URL%/api/v2/webhooks/trigger}
  [ -n "$URL" ] && [ "$URL" != None ] || fail "stack $STACK has no TriggerUrl output"
  if [ -z "$KEY" ]; then
    KEY=$("${AWS[@]}" secretsmanager get-secret-value --secret-id "$STACK/ingest/api-key" \
      --query SecretString --output text)
    # During a key change the secret holds {"current", "next"}: either works.
    case "$KEY" in \{*) KEY=$(printf '%s' "$KEY" | json 'v["current"]') ;; esac
  fi
elif [ -z "$URL" ] || [ -z "$LOG" ]; then
  fail "give --stack NAME, or --url URL --key KEY --log FILE (see --help)"
fi

ID="smoke-$(date +%s)-$RANDOM"
START_MS=$(( $(date +%s) * 1000 - 5000 ))
echo "smoke: POST $URL/api/v2/webhooks/trigger (event $ID)"
ANSWER=$(curl -sS -o - -w '\n%{http_code}' "$URL/api/v2/webhooks/trigger" \
  -H 'content-type: application/json' ${KEY:+-H "X-API-Key: $KEY"} \
  -d "{\"id\": \"$ID\", \"event_type\": \"custom\", \"name\": \"router-smoke\"}") \
  || fail "the trigger endpoint did not answer"
STATUS=${ANSWER##*$'\n'}
BODY=${ANSWER%$'\n'*}
case "$STATUS" in
  202) ;;
  200) fail "200 but no route fired: add the router-smoke route (infra/config/routes.toml) and deploy" ;;
  *) fail "the trigger answered $STATUS: $BODY" ;;
esac
DELIVERY=$(printf '%s' "$BODY" | json 'next(d["delivery_id"] for d in v["deliveries"] if d["route"] == "router-smoke")') \
  || fail "202 without a router-smoke delivery: $BODY"
echo "smoke: 202, delivery $DELIVERY queued; waiting for it at $URL/api/v2/webhooks/smoke"

# The log lines of this event: the sink's arrival, or the deliver side's attempts.
lines() {
  if [ -n "$STACK" ]; then
    "${AWS[@]}" logs filter-log-events --log-group-name "/aws/lambda/$STACK/$1" \
      --start-time "$START_MS" --filter-pattern "\"$ID\"" --query 'events[].message' --output text 2>/dev/null || true
  else
    grep -F "$ID" "$LOG" | grep -F "$2" || true
  fi
}
DEADLINE=$(( $(date +%s) + WAIT ))
while [ "$(date +%s)" -lt "$DEADLINE" ]; do
  ARRIVED=$(lines trigger "smoke delivery received" | grep -F "smoke delivery received" || true)
  if [ -n "$ARRIVED" ]; then
    WHERE=${STACK:+the log group /aws/lambda/$STACK/trigger}
    echo "smoke: delivered. $DELIVERY reached $URL/api/v2/webhooks/smoke, its signature verified (${WHERE:-$LOG}):"
    echo "$ARRIVED" | head -1
    exit 0
  fi
  if [ -n "$(lines deliver "giving up" | grep -F "giving up" || true)" ]; then
    echo "smoke: the delivery was given up (dead-lettered). What the deliver side logged for $ID:" >&2
    lines deliver "$DELIVERY" >&2
    fail "see docs/operations.md, \"The smoke check\""
  fi
  sleep 2
done
echo "smoke: no arrival within ${WAIT}s. What the deliver side logged for $ID:" >&2
lines deliver "$DELIVERY" >&2
fail "see docs/operations.md, \"The smoke check\""
