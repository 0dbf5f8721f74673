#!/usr/bin/env python3
"""Ask an mcp-server something with the official Python MCP SDK (mcp 2.x).

    python3 examples/mcp_client.py --url http://127.0.0.1:8080/mcp --token TOKEN "query"

Lists the server's tools, then calls search_knowledgebase and prints the answer.
"""

import argparse
import asyncio
import sys

from mcp.client import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--mode", default="auto", choices=["auto", "legacy"])
    p.add_argument("--top-n", type=int, default=3)
    p.add_argument("query")
    a = p.parse_args()
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {a.token}"})
    async with Client(streamable_http_client(a.url, http_client=http), mode=a.mode) as client:
        tools = await client.list_tools()
        print("tools:", ", ".join(t.name for t in tools.tools))
        result = await client.call_tool("search_knowledgebase", {"query": a.query, "top_n": a.top_n})
        for block in result.content:
            print(getattr(block, "text", block))
        return 1 if result.is_error else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
