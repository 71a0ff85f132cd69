#!/usr/bin/env bash
# Python packages the e2e tests use: pyarrow and DuckDB read Freshet's output files
# (`freshet query --format parquet|arrow`), psycopg talks to the PostgreSQL endpoint
# (`serve --pg-listen`), httpx and httpx-sse (a real Server-Sent Events client) follow its
# change feed; in a venv under target/ so that the system's Python is left alone. Prints
# the venv's python; .ci/run exports it as FRESHET_TEST_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/target/test-python"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c 'import pyarrow, duckdb, psycopg, httpx, httpx_sse' 2>/dev/null; then
    "$venv/bin/pip" install -q 'pyarrow==26.0.1' 'duckdb==2.0.1' 'psycopg[binary]==3.3.9' \
        'httpx==0.28.1' 'httpx-sse==0.4.1' >&2
fi
echo "$venv/bin/python"
