#!/usr/bin/env bash
# Python packages the e2e tests read Freshet's output files with (pyarrow and DuckDB, for
# `freshet query --format parquet|arrow`) and follow its change feed with (httpx and
# httpx-sse, a real Server-Sent Events client), in a venv under target/ so that the
# system's Python is left alone. Prints the venv's python; .ci/run exports it as FRESHET_TEST_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/target/test-python"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c 'import pyarrow, duckdb, httpx, httpx_sse' 2>/dev/null; then
    "$venv/bin/pip" install -q 'pyarrow==26.0.1' 'duckdb==2.0.1' 'httpx==0.28.1' \
        'httpx-sse==0.4.1' >&2
fi
echo "$venv/bin/python"
