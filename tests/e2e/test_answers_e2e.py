"""The five questions issue 12 reported, through ``selador serve`` as a newcomer asks them.

Each answer must be on topic: the right tools, and the facts a good answer contains (figures from
the real calculators and the bundled table, code sections from the bundled documents).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from .conftest import GatewayProcess, collect_frames, invoke_message, ws_connect

pytestmark = pytest.mark.e2e


async def ask(
    gateway: GatewayProcess, question: str, query_type: str, context: str | None = None
) -> dict[str, Any]:
    fields = {"query_type": query_type, **({"context": context} if context else {})}
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        await ws.send(invoke_message(question, "q-answer", **fields))
        frames = (await collect_frames(ws, {"q-answer"}))["q-answer"]
    terminal = frames[-1]
    assert terminal["type"] == "result", terminal
    return terminal["data"]


async def test_zoning_requirements_on_capitol_hill_name_its_residential_zones(
    gateway: GatewayProcess,
) -> None:
    data = await ask(
        gateway,
        "What are the zoning requirements for residential development?",
        "zoning",
        "Looking at a property in Capitol Hill area",
    )
    content = data["content"]
    # Leads with the standards of the zones Capitol Hill's residential blocks are in, not the station.
    assert content.startswith("In ")
    assert re.search(r"\bLR2\b", content) and re.search(r"\bLR3\b", content) and "Midrise" in content
    assert "23.45" in content and "Neighborhood Residential" in content
    assert data["tool_calls"]["zoning_standards"] >= 2


async def test_a_permit_for_a_2000_sq_ft_addition_is_estimated(gateway: GatewayProcess) -> None:
    data = await ask(gateway, "How much would a permit cost for a 2000 sq ft addition?", "permits")
    assert set(data["tool_calls"]) == {"search_knowledge_base", "permit_fee_estimate"}
    assert "$500,000.00 project" in data["content"]  # 2,000 sq ft at the illustrative $250
    assert "22.900" in data["content"] and "value of the work" in data["content"]


async def test_the_monthly_payment_uses_the_mortgage_calculator(gateway: GatewayProcess) -> None:
    data = await ask(
        gateway, "What is the monthly payment on a 800000 dollar house with 20% down at 6.5%?", "financing"
    )
    assert data["tool_calls"] == {"mortgage_payment": 1}
    assert data["content"].startswith("Estimated monthly payment for a $800,000.00 home: $4,811.91")
    assert "$4,045.24" in data["content"]  # principal and interest


async def test_hello_says_what_the_assistant_covers_without_searching(gateway: GatewayProcess) -> None:
    data = await ask(gateway, "hello, who are you?", "general")
    assert data["tool_calls"] == {} and data["tools_used"] == 0
    for topic in ("zoning", "building codes", "permits", "mortgage payments"):
        assert topic in data["content"]
    assert "No passages" not in data["content"]


async def test_the_far_in_lr2(gateway: GatewayProcess) -> None:
    data = await ask(gateway, "What is the FAR in LR2?", "zoning")
    assert data["content"].startswith("In LR2: floor area ratio (FAR): 1.4.")
    assert "23.45.510" in data["content"]
