#!/usr/bin/env bash
# Checks a node's HTTP API against its own OpenAPI document: starts HERALD_BIN on the
# embedded default (config/herald.toml) with the saga's domains, on a free port and a fresh
# data directory; fetches GET /v1/openapi.json and validates it (openapi-spec-validator);
# posts the README's saga and checks every answer it reads back (entities, queries,
# listings) against the document's schemas; then fuzzes the API with schemathesis for
# DURATION seconds (default 120) and stops the node.
#
#   HERALD_BIN=target/debug/herald scripts/api-check.sh [DURATION]
#
# openapi-spec-validator and schemathesis are installed, pinned, into
# ${CARGO_TARGET_DIR:-target}/api-check-venv on first use (python3 with venv and pip, and
# PyPI, needed then). Orders and shipping run in PARTITIONS partitions (default 3, as the
# integration tests' nodes). The SSE tail never ends, so it is left out of the fuzzing;
# GET /v1/streams is fuzzed as JSON (schemathesis sends no `Accept: text/event-stream`).
# The document, the node's log, schemathesis's JUnit report and its cache of failing cases
# (.schemathesis/, for `schemathesis replay` run there) are kept in
# ${CARGO_TARGET_DIR:-target}/api-check. Exits non-zero when any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0
DURATION=${1:-120}
PARTITIONS=${PARTITIONS:-3}
SAGA=analytics,inventory,orders,payments,shipping
target=${CARGO_TARGET_DIR:-target}
[[ $target == /* ]] || target=$PWD/$target
venv=$target/api-check-venv
out=$target/api-check

say() { printf 'api-check: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}

[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a whole number of seconds, not \"$DURATION\""
[[ -n ${HERALD_BIN:-} ]] || die "set HERALD_BIN to the herald binary (e.g. target/debug/herald)"
[[ -x $HERALD_BIN ]] || die "HERALD_BIN=$HERALD_BIN is not an executable"
command -v curl >/dev/null 2>&1 || die "curl is needed to wait for the node"
command -v python3 >/dev/null 2>&1 || die "python3 is needed for the checking tools"

# --- tools: a venv with both, pinned; reinstalled when the pins change ----------------
pins="schemathesis==$SCHEMATHESIS_VERSION openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION"
if [[ ! -x $venv/bin/schemathesis || $(cat "$venv/.pins" 2>/dev/null) != "$pins" ]]; then
  say "installing $pins into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (install python3-venv; .ci/run does)"
  # shellcheck disable=SC2086 # $pins is two requirement words
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $pins ||
    die "installing $pins failed"
  printf '%s' "$pins" >"$venv/.pins"
fi

# --- the node -----------------------------------------------------------------------
mkdir -p "$out"
data=$(mktemp -d "${TMPDIR:-/tmp}/herald-api-check.XXXXXX")
log=$out/node.log
pid=
stop_node() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
      if ((waited == 200)); then
        say "node (pid $pid) did not stop within 20 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
      sleep 0.1
      waited=$((waited + 1))
    done
    wait "$pid" 2>/dev/null || true
  fi
  pid=
  rm -rf "$data"
}
trap stop_node EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_log() {
  say "--- last lines of $log"
  tail -n 30 "$log" >&2 || true
}

HERALD_HTTP__BIND=127.0.0.1:0 \
  HERALD_NODE__DATA_DIR="$data/node" \
  HERALD_DOMAINS__ENABLED=$SAGA \
  HERALD_DOMAINS__PARTITIONS=$PARTITIONS \
  NO_COLOR=1 \
  "$HERALD_BIN" run --config config/herald.toml >"$log" 2>&1 &
pid=$!

# Port 0: the node picks a free port and names it in its "herald node listening" line.
address=
for _ in $(seq 900); do
  address=$(grep -o 'herald node listening.*' "$log" 2>/dev/null | grep -o 'address=[^ ]*' | head -n 1 | cut -d= -f2 || true)
  [[ -n $address ]] && break
  kill -0 "$pid" 2>/dev/null || {
    show_log
    die "the node exited before listening"
  }
  sleep 0.1
done
[[ -n $address ]] || {
  show_log
  die "the node did not report its address within 90 s"
}
base=${address%/}
[[ $base == http://* ]] || base=http://$base

ready() { [[ $(curl -s -o /dev/null -w '%{http_code}' "$base/readyz") == 200 ]]; }
for _ in $(seq 900); do
  ready && break
  kill -0 "$pid" 2>/dev/null || {
    show_log
    die "the node exited before it was ready"
  }
  sleep 0.1
done
ready || {
  show_log
  die "$base/readyz is not 200 after 90 s"
}
say "node ready at $base (log: $log)"

# --- the document ---------------------------------------------------------------------
document=$out/openapi.json
curl -sf "$base/v1/openapi.json" -o "$document" || die "GET $base/v1/openapi.json failed"
"$venv/bin/python" -m openapi_spec_validator "$document" || die "$document is not a valid OpenAPI document"
say "$document is a valid OpenAPI document"

# --- the saga, read back against the document's schemas -----------------------------
# The fuzzer never guesses an existing key, so entities are checked here: the README's
# order, each answer validated against the component the document names for it.
"$venv/bin/python" - "$base" "$document" <<'PYTHON' || die "answers do not match the document"
import json
import sys
import time
import urllib.error
import urllib.request

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

base, document_path = sys.argv[1], sys.argv[2]
with open(document_path) as file:
    document = json.load(file)
# The document as a resource, so "#/components/..." in every schema resolves within it.
registry = Registry().with_resource(
    "urn:herald:openapi", Resource(contents=document, specification=DRAFT202012)
)
failures = []


def send(method, path, body=None, headers=None):
    request = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers=headers or {},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    return status, json.loads(raw) if raw else None


def check(what, component, answer):
    schema = {"$ref": f"urn:herald:openapi#/components/schemas/{component}"}
    errors = list(Draft202012Validator(schema, registry=registry).iter_errors(answer))
    for error in errors:
        failures.append(f"{what}: {error.message} at {error.json_path} (schema {component})")
    print(f"  {what}: {'ok' if not errors else 'DOES NOT MATCH'} ({component})")


def expect(what, status, wanted, answer):
    if status != wanted:
        failures.append(f"{what}: status {status}, expected {wanted}: {answer}")
        return False
    return True


def read(path, component, wanted=200):
    status, answer = send("GET", path)
    if expect(f"GET {path}", status, wanted, answer):
        check(f"GET {path}", component, answer)
    return status


run = f"api-check-{time.time_ns()}"
structured = {"content-type": "application/cloudevents+json"}
events = [
    ("inventory.StockAdded", "sku-1", {"sku": "sku-1", "quantity": 10}),
    ("payments.CreditGranted", "alice", {"customer": "alice", "amount": 5000}),
    ("orders.OrderPlaced", "o-1", {"order_id": "o-1", "customer": "alice",
                                   "lines": [{"sku": "sku-1", "quantity": 2, "unit_price": 700}]}),
]
posted = []
for index, (event_type, subject, data) in enumerate(events):
    event = {"specversion": "1.0", "id": f"{run}-{index}", "source": "/api-check",
             "type": event_type, "subject": subject, "data": data}
    posted.append(event)
    status, answer = send("POST", "/v1/events", event, structured)
    if expect(f"POST {event_type}", status, 202, answer):
        check(f"POST {event_type}", "IngestResult", answer)
    check(f"{event_type} as sent", f"CloudEvent.{event_type}", event)
status, answer = send("POST", "/v1/events", posted[:1],
                      {"content-type": "application/cloudevents-batch+json"})
if expect("POST a resent batch", status, 200, answer):
    check("POST a resent batch", "IngestResults", answer)
status, answer = send("POST", "/v1/events", {"sku": "sku-2", "quantity": 1}, {
    "content-type": "application/json", "ce-specversion": "1.0", "ce-id": f"{run}-binary",
    "ce-source": "/api-check", "ce-type": "inventory.StockAdded", "ce-subject": "sku-2"})
if expect("POST binary mode", status, 202, answer):
    check("POST binary mode", "IngestResult", answer)
status, answer = send("GET", "/v1/domains/nowhere/entities/x")
if expect("GET an unknown domain", status, 404, answer):
    check("GET an unknown domain", "Problem", answer)

read("/v1/domains/inventory/entities/sku-1", "Entity.inventory")
read("/v1/domains/payments/entities/alice", "Entity.payments")
read("/v1/domains/orders/entities/o-1", "Entity.orders")
# Shipping schedules the order once stock and payment are through: the saga takes a moment.
deadline = time.monotonic() + 30
while send("GET", "/v1/domains/shipping/entities/o-1")[0] != 200 and time.monotonic() < deadline:
    time.sleep(0.2)
read("/v1/domains/shipping/entities/o-1", "Entity.shipping")
read("/v1/domains/analytics/queries/summary", "Answer.analytics.summary")
read("/v1/domains/orders/queries/statuses?customer=alice", "Answer.orders.statuses")
read("/v1/domains", "Topology")
read("/v1/streams", "Streams")
read("/v1/cluster", "Cluster")
read("/v1/deadletters", "DeadLetterCounts")
read("/v1/deadletters/orders", "DeadLetters")
read("/v1/deadletters/inventory", "DeadLetters")
read("/healthz", "Health")
read("/readyz", "Readiness")
status, page = send("GET", "/v1/streams/inventory/events?limit=10")
if expect("GET /v1/streams/inventory/events", status, 200, page):
    for number, event in enumerate(page):
        check(f"inventory event {number}", "StoredCloudEvent", event)

for failure in failures:
    print(f"api-check: {failure}", file=sys.stderr)
sys.exit(1 if failures else 0)
PYTHON
say "the saga's answers match the document"

# --- fuzzing ------------------------------------------------------------------------
command=(
  "$venv/bin/schemathesis" run "$base/v1/openapi.json"
  --url "$base"
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
  --exclude-path '/v1/streams/{stream}/tail'
  --max-time "$DURATION"
  --request-timeout 30
  --suppress-health-check all
  --generation-database none
  --report junit --report-dir "$out"
)
say "fuzzing for $DURATION s: ${command[*]}"
status=0
# From $out: schemathesis keeps its cache of failing cases in ./.schemathesis.
(cd "$out" && "${command[@]}") || status=$?
if ((status != 0)); then
  show_log
  die "schemathesis found failures (exit $status); report in $out"
fi
say "no failures; report in $out"
