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
  operation. The fuzzer leaves the header out (it is optional); `tests/it/idempotency.rs` holds
  its rules.
- `dry_run` is left out too: a dry run answers exactly as the same request does
  (`tests/it/dry_run.rs` holds that for every write operation), so it adds no case. With it,
  schemathesis' coverage phase sent `0` as the JSON body of `POST /deals/{id}/emails/send` and
  `.../reply/{message_id}` (both with email patterns it cannot draw from) and took the 422 for
  a valid request refused.
- Some rules depend on what the server holds or is configured with, which no schema can say:
  an id in a body must name a record of the organization ("names no user of this
  organization"), a webhook URL may not name an address in a refused range, and a time zone must
  be one the IANA database knows. Such a request is well formed and rightly refused with a 422
  that names the field (issue 21). `positive_data_acceptance` is replaced by the same check
  that lets exactly those 422s through: every detail must be one of them, so any other refusal
  of valid data still fails the run.
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



# The issues (as the server words them) of rules that depend on stored records or on the
# server's configuration, not on the request's shape; and rules of a body's content that no
# pattern can state: an inbound message that names no recipient, a CSV header row that names
# no column the import reads ("names no recipient ...", "names no column ..."), an email
# template that does not parse or names a variable that is no field ("is not a valid
# template", "uses `lead.x`, which is not a variable"), a recipient on the suppression list,
# a change that would clear a template's only stored body.
STATEFUL_ISSUES = (
    "names no ",
    "names a deactivated user",
    "names the address ",
    "must be a time zone of the IANA database",
    "is not a valid template",
    "uses `",
    "is suppressed: ",
    "would leave the template without a body",
    "is only for email steps",
    "is required for a task step",
)


def _refused_by_a_stateful_rule(response):
    if response.status_code != 422:
        return False
    try:
        details = json.loads(response.text)["error"]["details"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(details) and all(
        str(d.get("issue", "")).startswith(STATEFUL_ISSUES) for d in details
    )


@schemathesis.check
def positive_data_acceptance_but_stateful_rules(ctx, response, case):
    """The built-in positive_data_acceptance, except for the 422s of STATEFUL_ISSUES."""
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    if _refused_by_a_stateful_rule(response):
        return None
    return positive_data_acceptance(ctx, response, case)
