#!/usr/bin/env bash
# Checks Cargo.lock against the RustSec advisory database with cargo-deny (deny.toml's
# [advisories]): vulnerabilities, unsound code, notices, yanked crates, and unmaintained
# direct dependencies. CI cannot run it: the database is a git repository on GitHub, which
# CI's network does not reach (only package registries), and no registry mirrors it. Run it
# where GitHub is reachable, or give it a clone of the database made elsewhere:
#
#   scripts/deny-advisories.sh                      # fetches the database (needs github.com)
#   ADVISORY_DB=/path/to/advisory-db scripts/deny-advisories.sh   # a local clone, offline
#
# With ADVISORY_DB, the clone is used as it is (no fetch), and a database up to 400 days old
# is accepted (cargo-deny's default limit is 90): say how old it was when you report a pass.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deny --version >/dev/null 2>&1; then
    cargo install --locked cargo-deny
fi
if [ -z "${ADVISORY_DB:-}" ]; then
    exec cargo deny check advisories
fi
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT
# cargo-deny looks for the database of a URL under <db-path>/advisory-db-<hash of the URL>;
# this is the name for deny.toml's db-urls entry.
ln -s "$(cd "$ADVISORY_DB" && pwd)" "$DIR/advisory-db-3157b0e258782691"
sed -e "s|^db-path = .*|db-path = \"$DIR\"|" \
    -e 's|^yanked = .*|&\nmaximum-db-staleness = "P400D"|' deny.toml >"$DIR/deny.toml"
echo "advisory database: $(git -C "$ADVISORY_DB" log -1 --format='%h of %cs' 2>/dev/null || echo "$ADVISORY_DB")"
cargo deny --offline --config "$DIR/deny.toml" check advisories
