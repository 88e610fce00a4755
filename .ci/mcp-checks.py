"""Checks through the official Python MCP SDK that the example does not make:

- with an admin key, every tool's input and output schema is valid JSON Schema (2020-12, the
  dialect MCP names), with no reference left to resolve;
- a read-only key lists no write tool, and a write tool called anyway fails as a tool error
  naming the missing scope, with nothing written.

    CLOZUP_KEY=<admin key> CLOZUP_READ_KEY=<read key> python3 .ci/mcp-checks.py URL
    CLOZUP_KEY=<admin key> CLOZUP_READ_KEY=<read key> python3 .ci/mcp-checks.py --stdio DB
"""

import asyncio
import os
import sys

import httpx2
import jsonschema
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


def connect(target, key):
    if target[0] == "--stdio":
        env = {**os.environ, "CLOZUP_KEY": key}
        args = ["mcp", "--db", target[1], "--toolsets", "all"]
        return Client(StdioServerParameters(command=os.environ["CLOZUP_BIN"], args=args, env=env))
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return Client(streamable_http_client(target[0] + "?toolsets=all", http_client=http))


async def schemas(target):
    async with connect(target, os.environ["CLOZUP_KEY"]) as client:
        tools = (await client.list_tools()).tools
        for tool in tools:
            for schema in (tool.input_schema, tool.output_schema):
                if schema is None:
                    continue
                jsonschema.Draft202012Validator.check_schema(schema)
                if "$ref" in str(schema):
                    sys.exit(f"{tool.name}: a reference is left in {schema}")
        print(f"admin key: {len(tools)} tools, every schema valid JSON Schema 2020-12")


async def read_only(target):
    async with connect(target, os.environ["CLOZUP_READ_KEY"]) as client:
        tools = (await client.list_tools()).tools
        writers = [t.name for t in tools if not t.annotations.read_only_hint]
        if not tools or writers:
            sys.exit(f"a read key lists {len(tools)} tools, write tools among them: {writers}")
        before = (await client.call_tool("list_leads", {})).structured_content["meta"]["total"]
        result = await client.call_tool("create_lead", {"first_name": "Not", "last_name": "Allowed"})
        text = result.content[0].text
        if not result.is_error or "forbidden" not in text or "`write` scope" not in text:
            sys.exit(f"create_lead with a read key: {result}")
        after = (await client.call_tool("list_leads", {})).structured_content["meta"]["total"]
        if after != before:
            sys.exit(f"a refused create_lead wrote: {before} leads, then {after}")
        print(f"read key: {len(tools)} tools, all read-only; create_lead refused: {text.splitlines()[0]}")


if __name__ == "__main__":
    asyncio.run(schemas(sys.argv[1:]))
    asyncio.run(read_only(sys.argv[1:]))
