"""schemathesis hooks for scripts/schemathesis.sh.

schemathesis has no serializer for NDJSON (the ingest body): this one sends the generated
body as it is, text as UTF-8 and anything else (negative mode) as JSON.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return {"data": value}
    if isinstance(value, str):
        return {"data": value.encode("utf-8")}
    return {"data": json.dumps(value).encode("utf-8")}
