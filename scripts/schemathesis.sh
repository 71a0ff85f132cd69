#!/usr/bin/env bash
# Tries the HTTP API hard with schemathesis (property-based tests generated from
# docs/openapi.yaml): a fresh `freshet serve` with two streams, ingested events, a view with
# results and an admin token, then every operation of the spec with valid and invalid input.
# It fails on any 5xx, a crash of the server, or a response the spec does not allow (status
# code, content type, headers, body schema), and on a request the spec calls invalid that the
# server accepts, or one it calls valid that the server refuses (scripts/schemathesis.toml).
# CI runs it after the tests (.ci/run).
#
# Usage: scripts/schemathesis.sh
#   FRESHET_BIN                  the binary (default: target/debug/freshet, built if missing)
#   SCHEMATHESIS_MAX_TIME        seconds of generated requests (default 150)
#   SCHEMATHESIS_MAX_EXAMPLES    examples per operation and cycle (default 50)
#   SCHEMATHESIS_SEED            a seed, to replay a run (default: random, printed)
#   SCHEMATHESIS_VENV            where schemathesis is installed (default target/schemathesis-venv)
# Needs python3 with venv, and PyPI the first time (schemathesis is pinned below).
# Failures are reproduced by the curl commands it prints, and the server's log is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
SCHEMATHESIS_VERSION=4.32.5
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
BIN="${FRESHET_BIN:-$TARGET/debug/freshet}"
VENV="${SCHEMATHESIS_VENV:-$TARGET/schemathesis-venv}"
MAX_TIME="${SCHEMATHESIS_MAX_TIME:-150}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-50}"
SEED="${SCHEMATHESIS_SEED:-$RANDOM$RANDOM}"

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q " $SCHEMATHESIS_VERSION\$"; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
if [ ! -x "$BIN" ]; then
    cargo build --workspace --locked
fi

WORK="$(mktemp -d /tmp/freshet-schemathesis.XXXXXX)"
SERVER=""
cleanup() {
    if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then
        kill -TERM "$SERVER"
        wait "$SERVER" || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
freshet() { "$BIN" --data-dir "$WORK/data" "$@"; }
export FRESHET_LOG=warn
unset FRESHET_TOKENS FRESHET_TOKEN FRESHET_STORE FRESHET_DATA_DIR

# Something real for every endpoint to return: two streams, events, a view with results.
freshet sql "CREATE STREAM bid (auction BIGINT NOT NULL, bidder BIGINT NOT NULL,
    price BIGINT NOT NULL, channel VARCHAR, url VARCHAR, date_time TIMESTAMP NOT NULL,
    extra VARCHAR, WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
    WITH (partitions = 2, partition_key = 'auction');
  CREATE STREAM clicks (user_id BIGINT NOT NULL, page VARCHAR, amount DECIMAL(10,2),
    ok BOOLEAN, ts TIMESTAMP NOT NULL, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)" >/dev/null
freshet gen nexmark --events 5000 --only bid --out "$WORK/bids.ndjson" >/dev/null
freshet ingest bid "$WORK/bids.ndjson" >/dev/null
freshet sql "CREATE VIEW counts AS SELECT auction, window_start, window_end, COUNT(*) AS bids,
    MAX(price) AS top FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
    GROUP BY auction, window_start, window_end" >/dev/null
TOKEN="$(freshet token create --role admin --name schemathesis | tail -1)"

# The binary itself, not the shell function: `$!` must be the server's pid for the
# cleanup's SIGTERM to reach it (a backgrounded function is a subshell that would not
# pass the signal on, leaving the server running).
"$BIN" --data-dir "$WORK/data" serve --listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.log" &
SERVER=$!
ADDR=""
for _ in $(seq 300); do
    ADDR="$(sed -n 's|^freshet serving on http://||p' "$WORK/serve.out")"
    [ -n "$ADDR" ] && break
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$ADDR" ]; then
    echo "schemathesis.sh: freshet serve did not start:" >&2
    cat "$WORK/serve.log" >&2
    exit 1
fi
# Wait (bounded) for the view's first commit, so that results and freshness are real.
for _ in $(seq 300); do
    if curl -sf -H "Authorization: Bearer $TOKEN" "http://$ADDR/v1/views/counts/results?limit=1" \
        | grep -q '"committed_at":"'; then
        break
    fi
    sleep 0.1
done

echo "schemathesis $SCHEMATHESIS_VERSION against $ADDR: ${MAX_TIME}s, ${MAX_EXAMPLES} examples per operation, seed $SEED"
status=0
timeout --signal=INT --kill-after=30 $((MAX_TIME + 120)) \
    "$VENV/bin/schemathesis" --config-file scripts/schemathesis.toml run docs/openapi.yaml \
    --url "http://$ADDR" \
    --header "Authorization: Bearer $TOKEN" \
    --max-time "$MAX_TIME" --max-examples "$MAX_EXAMPLES" --seed "$SEED" \
    --workers 2 --no-color || status=$?
if ! kill -0 "$SERVER" 2>/dev/null; then
    echo "schemathesis.sh: freshet serve died during the run" >&2
    status=1
fi
if [ "$status" -ne 0 ]; then
    echo "== freshet serve's log" >&2
    tail -n 200 "$WORK/serve.log" >&2
fi
exit "$status"
