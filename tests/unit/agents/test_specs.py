"""Routing specs: every query type has an agent, every tool name exists, and no strands at import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from selador.agents import AGENT_SPECS, QUERY_ROUTES, spec_for_query_type
from selador.protocol import QUERY_TYPES


@pytest.mark.parametrize("query_type", QUERY_TYPES)
def test_every_query_type_maps_to_a_spec(query_type: str) -> None:
    spec = spec_for_query_type(query_type)

    assert spec is AGENT_SPECS[QUERY_ROUTES[query_type]]
    assert spec.tool_names
    assert "Seattle" in spec.system_prompt


def test_routes_cover_exactly_the_protocol_query_types() -> None:
    assert set(QUERY_ROUTES) == set(QUERY_TYPES)


def test_routing_table() -> None:
    assert {qt: spec_for_query_type(qt).name for qt in QUERY_TYPES} == {
        "general": "general",
        "zoning": "rag",
        "building_codes": "rag",
        "permits": "rag",
        "financing": "finance",
    }
    assert spec_for_query_type("zoning").tool_names == (
        "search_knowledge_base",
        "zoning_standards",
        "buildable_area",
        "permit_fee_estimate",
        "mortgage_payment",
    )
    assert spec_for_query_type("financing").tool_names == ("mortgage_payment", "search_knowledge_base")
    assert spec_for_query_type("general").tool_names == (
        "search_knowledge_base",
        "mortgage_payment",
        "permit_fee_estimate",
    )


def test_every_spec_tool_exists() -> None:
    from selador.agents.tools import TOOLS

    for spec in AGENT_SPECS.values():
        assert set(spec.tool_names) <= set(TOOLS), spec.name


def test_unknown_query_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="no agent for query_type 'astrology'"):
        spec_for_query_type("astrology")


def test_importing_the_agents_package_does_not_import_strands() -> None:
    code = (
        "import sys, selador.agents, selador.agents.specs, selador.agents.state; "
        "print('strands' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "False"
