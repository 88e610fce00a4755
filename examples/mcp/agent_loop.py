"""The seed's daily agent loop through Clozup's MCP server, with the official Python MCP SDK.

    pip install -r requirements.txt
    CLOZUP_KEY=clz_... python3 agent_loop.py http://127.0.0.1:8080/mcp      # Streamable HTTP
    CLOZUP_KEY=clz_... python3 agent_loop.py --stdio crm.sqlite             # `clozup mcp`

Tool calls only: the agenda, buying signals, the deals at risk, one deal's intelligence and
memory, then it logs an activity, remembers what it concluded and moves the deal on. It also
reads the deal as a resource and gets the `daily_loop` prompt. Exits non-zero if a step fails.
"""

import asyncio
import datetime
import json
import os
import sys

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


def connect(target, key):
    """A client for `target`: a URL (`/mcp`), or `--stdio DB` to start `clozup mcp` on DB."""
    if target[0] == "--stdio":
        command = os.environ.get("CLOZUP_BIN", "clozup")
        env = {**os.environ, "CLOZUP_KEY": key}
        return Client(StdioServerParameters(command=command, args=["mcp", "--db", target[1]], env=env))
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return Client(streamable_http_client(target[0], http_client=http))


async def call(client, tool, **arguments):
    """A tool's structured answer; a tool error stops the loop with the API's code and message."""
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        sys.exit(f"{tool}: {result.content[0].text}")
    return result.structured_content["data"]


async def main(target):
    async with connect(target, os.environ["CLOZUP_KEY"]) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        print(f"0. {len(tools)} tools (protocol {client.protocol_version})")

        agenda = await call(client, "get_agenda")
        print(f"1. agenda: {agenda['totals']}")

        signals = await call(client, "list_signals", score_min=70)
        print(f"2. {len(signals)} buying signals scored 70 or more")

        at_risk = await call(client, "list_at_risk_deals")
        if not at_risk:
            sys.exit("3. no deal at risk: nothing to review")
        deal_id = at_risk[0]["deal_id"]
        print(f"3. {len(at_risk)} deals at risk; reviewing {at_risk[0]['deal']['title']!r}")

        intel = await call(client, "get_deal_intelligence", id=deal_id)
        print(f"4. {intel['risk_level']} risk {intel['risk_score']}: {intel['suggested_action']}")

        memory = await call(client, "list_deal_memory", id=deal_id)
        print(f"5. {len(memory)} things remembered about the deal")

        today = datetime.date.today()
        activity = await call(client, "create_activity", type="other", deal_id=deal_id,
                              subject="Reviewed by the MCP agent loop",
                              idempotency_key=f"mcp-review-{deal_id}-{today}")
        print(f"6. logged {activity['id']}")

        remembered = await call(client, "create_deal_memory", id=deal_id,
                                content=f"Risk {intel['risk_score']}: {intel['suggested_action']}")
        print(f"7. remembered {remembered['id']}")

        preview = await call(client, "move_deal", id=deal_id, stage="Negotiation", dry_run=True)
        moved = await call(client, "move_deal", id=deal_id, stage="Negotiation")
        print(f"8. moved to {moved['stage_id']} (the dry run said {preview['stage_id']})")

        resource = await client.read_resource(f"clozup://deals/{deal_id}")
        read = json.loads(resource.contents[0].text)
        print(f"9. resource: {read['deal']['title']!r}, {len(read['memory'])} memories, "
              f"risk {read['intelligence']['risk_level']}")

        prompt = await client.get_prompt("daily_loop")
        print(f"10. prompt: {prompt.messages[0].content.text.splitlines()[0]}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
