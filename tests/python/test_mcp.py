"""flywheel's MCP server at /mcp, driven by the official MCP Python SDK over Streamable HTTP: list the tools,
call them, and see a tool's refusal come back as an error result."""

import asyncio
import json

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def exercise(url):
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
            assert "get_order_details" in tools and "cancel_pending_order" in tools
            assert tools["get_order_details"].input_schema["required"] == ["order_id"]

            listing = await session.call_tool("list_all_product_types", {})
            assert not listing.is_error
            products = listing.structured_content or json.loads(listing.content[0].text)
            assert len(products) == 50

            # The order tools refuse until the customer is authenticated in this MCP session.
            refused = await session.call_tool("get_order_details", {"order_id": "#W7678072"})
            assert refused.is_error
            assert "authenticate" in refused.content[0].text

            user = await session.call_tool("find_user_id_by_email", {"email": "noah.brown7922@example.com"})
            assert user.content[0].text == "noah_brown_6181"
            order = await session.call_tool("get_order_details", {"order_id": "#W7678072"})
            assert not order.is_error
            assert order.structured_content["user_id"] == "noah_brown_6181"

            bad = await session.call_tool("get_order_details", {"order": "#W7678072"})
            assert bad.is_error and "invalid arguments" in bad.content[0].text


def test_mcp_sdk_lists_and_calls_flywheel_tools(server):
    asyncio.run(exercise(server["base_url"] + "/mcp"))
