"""Schemathesis hooks for .ci/fuzz-contract.

- Raw RFC 5322 messages go on the wire as text.
- The rules across fields the server enforces ("a name or an email", "a deal or a lead",
  "`stage_id` or `stage`") are stated in the served document's words only, since generators
  turn `anyOf`/`not` on an object into unions of one-field models. The fuzzer needs them as
  schema to send only valid requests as valid: it merges them, as the server itself prints them
  (`clozup openapi --cross-field-rules`, in the file CLOZUP_FUZZ_RULES names), into the schema
  it loads from the running server.
- An `Idempotency-Key` names one request: the same key with another request is a 422 by
  design, a state the generator cannot know, and it draws the same few keys for every
  operation. The fuzzer leaves the header out (it is optional); `tests/idempotency.rs` holds
  its rules.
- `dry_run` is left out too: a dry run answers exactly as the same request does
  (`tests/dry_run.rs` holds that for every write operation), so it adds no case. With it,
  schemathesis' coverage phase sent `0` as the JSON body of `POST /deals/{id}/emails/send` and
  `.../reply/{message_id}` (both with email patterns it cannot draw from) and took the 422 for
  a valid request refused.
"""

import json
import os

import schemathesis

schemathesis.serializer.alias("message/rfc822", "text/plain")


@schemathesis.hook
def before_load_schema(ctx, raw_schema):
    with open(os.environ["CLOZUP_FUZZ_RULES"], encoding="utf-8") as f:
        rules = json.load(f)
    schemas = raw_schema["components"]["schemas"]
    for name, keywords in rules.items():
        schemas[name].update(keywords)
    for operations in raw_schema["paths"].values():
        for operation in operations.values():
            parameters = operation.get("parameters", [])
            operation["parameters"] = [
                p for p in parameters if p["name"] not in ("Idempotency-Key", "dry_run")
            ]

