"""The seed's daily agent loop through a Python client generated from the OpenAPI document.

    openapi-python-client generate --url http://127.0.0.1:8080/api/v1/public/docs \
        --meta none --output-path clozup_client
    CLOZUP_URL=http://127.0.0.1:8080 CLOZUP_KEY=clz_... python3 agent_loop.py

Reads buying signals, reviews the riskiest deal with its intelligence and memory, logs what it
did, remembers what it concluded and moves the deal on. Every answer arrives as a typed model;
a refusal arrives as the typed error envelope. Exits non-zero if anything is not as typed.
"""

import datetime
import os
import sys

import attrs

from clozup_client import AuthenticatedClient
from clozup_client.api.activities import create_activity
from clozup_client.api.deals import get_deal, move_deal
from clozup_client.api.intelligence import (
    create_deal_memory,
    get_deal_intelligence,
    list_at_risk_deals,
    list_deal_memory,
    list_signals,
)
from clozup_client.models import (
    ActivityType,
    Currency,
    ErrorCode,
    ErrorEnvelope,
    LoggableActivityType,
    MoveDeal,
    NewActivity,
    NewMemory,
    RiskLevel,
    SignalStatus,
    SignalType,
)
from clozup_client.types import Unset


def typed(value, kind, step):
    """The value, if the client parsed it into `kind`; else stop, naming the step."""
    if not isinstance(value, kind):
        sys.exit(f"{step}: expected {kind.__name__}, got {type(value).__name__}: {value!r}")
    return value


def complete(record, step):
    """The record, if every field the server always sends came back (none left `Unset`)."""
    missing = [f.name for f in attrs.fields(type(record))
               if isinstance(getattr(record, f.name), Unset)]
    if missing:
        sys.exit(f"{step}: fields missing from {type(record).__name__}: {missing}")
    return record


def main():
    client = AuthenticatedClient(base_url=os.environ["CLOZUP_URL"] + "/api/v1",
                                 token=os.environ["CLOZUP_KEY"])
    with client:
        signals = list_signals.sync(client=client, score_min=70)
        for signal in signals.data:
            typed(signal.type_, SignalType, "signals")
            typed(signal.status, SignalStatus, "signals")
            typed(signal.detected_at, datetime.datetime, "signals")
            complete(signal, "signals")
        print(f"1. {signals.meta.total} buying signals scored 70 or more")

        at_risk = list_at_risk_deals.sync(client=client).data
        if not at_risk:
            sys.exit("2. no deal at risk: nothing to review")
        risky = at_risk[0]
        print(f"2. {len(at_risk)} deals at risk; reviewing {risky.deal.title!r} "
              f"({risky.risk_score}, {risky.deal.stage_name}, {risky.deal.value} "
              f"{risky.deal.currency.value})")

        intel = get_deal_intelligence.sync(id=risky.deal_id, client=client).data
        typed(intel.risk_level, RiskLevel, "intelligence")
        typed(intel.computed_at, datetime.datetime, "intelligence")
        print(f"3. {intel.risk_level.value} risk: {intel.suggested_action}")

        memory = list_deal_memory.sync(id=risky.deal_id, client=client).data
        print(f"4. {len(memory)} things remembered about the deal")

        activity = create_activity.sync(
            client=client,
            body=NewActivity(type_=LoggableActivityType.OTHER, deal_id=risky.deal_id,
                             subject="Reviewed by the agent loop"),
            idempotency_key=f"review-{risky.deal_id}-{datetime.date.today()}",
        ).data
        typed(activity.occurred_at, datetime.datetime, "activity")
        typed(activity.type_, ActivityType, "activity")
        complete(activity, "activity")
        print(f"5. logged {activity.id}")

        remembered = create_deal_memory.sync(
            id=risky.deal_id, client=client,
            body=NewMemory(content=f"Risk {intel.risk_score}: {intel.suggested_action}"),
        ).data
        print(f"6. remembered {remembered.id}")

        deal = get_deal.sync(id=risky.deal_id, client=client).data
        moved = move_deal.sync(id=deal.id, client=client,
                               body=MoveDeal(stage="Negotiation")).data
        typed(complete(moved, "move").currency, Currency, "move")
        print(f"7. moved {moved.id} to {moved.stage_id}")

        # Refusals come back as the typed envelope, with the code to act on.
        missing = get_deal.sync(id="deal_00000000000000000000000000", client=client)
        typed(missing, ErrorEnvelope, "a 404")
        invalid = list_signals.sync(client=client, per_page=1000)
        typed(invalid, ErrorEnvelope, "a 422")
        typed(missing.error.code, ErrorCode, "a 404")
        print(f"errors: {missing.error.code}, {invalid.error.code} ({invalid.error.message})")
        if (missing.error.code, invalid.error.code) != (ErrorCode.NOT_FOUND,
                                                        ErrorCode.VALIDATION_ERROR):
            sys.exit("the refusals carry the wrong codes")


if __name__ == "__main__":
    main()
