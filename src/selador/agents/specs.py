"""Agent definitions and the ``query_type`` → agent routing table.

Plain data, no strands import: the routes that only need to validate a ``query_type`` or name the
agent stay cheap to import. :mod:`selador.agents.orchestrator` turns a spec into a Strands ``Agent``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from selador.protocol import QUERY_TYPES


@dataclass(frozen=True)
class AgentSpec:
    """One specialist agent.

    Attributes:
        name: Short name reported in ``status`` and ``result`` frames (``rag``, ``finance``…).
        description: One line on what the agent is for.
        system_prompt: The instructions given to the model.
        tool_names: Names of the tools (from :mod:`selador.agents.tools`) the agent may call.
    """

    name: str
    description: str
    system_prompt: str
    tool_names: tuple[str, ...]


_GROUND_RULES = """
Ground rules:
- Use the tools. Search the knowledge base before answering anything about codes, zoning or
  permits, and use the calculators for numbers instead of doing arithmetic yourself.
- Cite the passages you rely on with their numbers as the tools give them, like [1] or [2], and end
  with a "Sources:" list of the numbers you cited.
- If the tools do not cover the question, say so plainly; never invent code sections, fees or
  figures.
- Be concise: a one-sentence answer first, then short bullet points.
- End with one line reminding the reader that this is general information and that the Seattle
  Department of Construction and Inspections (SDCI) has the final word.
""".strip()

RAG_SPEC = AgentSpec(
    name="rag",
    description="Zoning, building codes and permits, answered from the Seattle knowledge base.",
    system_prompt=(
        "You are Selador, a real-estate assistant for Seattle. You answer questions about zoning, "
        "development standards, building codes and permits for a property owner, buyer or small "
        "developer, grounded in the knowledge base and the bundled zoning table.\n\n" + _GROUND_RULES
    ),
    tool_names=(
        "search_knowledge_base",
        "zoning_standards",
        "buildable_area",
        "permit_fee_estimate",
        "mortgage_payment",
    ),
)

FINANCE_SPEC = AgentSpec(
    name="finance",
    description="Mortgage payments and affordability, with the knowledge base for context.",
    system_prompt=(
        "You are Selador, a real-estate assistant for Seattle helping with home financing: monthly "
        "payments, down payments, rates, property tax and insurance. Use mortgage_payment for every "
        "figure and state the assumptions you used (rate, term, down payment, tax, insurance).\n\n"
        + _GROUND_RULES
    ),
    tool_names=("mortgage_payment", "search_knowledge_base"),
)

GENERAL_SPEC = AgentSpec(
    name="general",
    description="General real-estate questions about Seattle.",
    system_prompt=(
        "You are Selador, a real-estate assistant for Seattle. Answer general questions about "
        "buying, owning and improving property, using the knowledge base for anything regulatory.\n\n"
        + _GROUND_RULES
    ),
    # Buyers ask about the house and the work they plan on it in one breath.
    tool_names=("search_knowledge_base", "mortgage_payment", "permit_fee_estimate"),
)

AGENT_SPECS: Mapping[str, AgentSpec] = MappingProxyType(
    {spec.name: spec for spec in (RAG_SPEC, FINANCE_SPEC, GENERAL_SPEC)}
)
"""Every agent, by name."""

QUERY_ROUTES: Mapping[str, str] = MappingProxyType(
    {
        "general": GENERAL_SPEC.name,
        "zoning": RAG_SPEC.name,
        "building_codes": RAG_SPEC.name,
        "permits": RAG_SPEC.name,
        "financing": FINANCE_SPEC.name,
    }
)
"""``query_type`` → agent name; covers every value of :data:`selador.protocol.QUERY_TYPES`."""


def spec_for_query_type(query_type: str) -> AgentSpec:
    """The agent that answers a ``query_type``.

    Args:
        query_type: One of :data:`selador.protocol.QUERY_TYPES`.

    Returns:
        The agent's spec.

    Raises:
        ValueError: for a query type with no route (the protocol rejects those earlier).
    """
    try:
        return AGENT_SPECS[QUERY_ROUTES[query_type]]
    except KeyError:
        raise ValueError(f"no agent for query_type {query_type!r}; expected one of {QUERY_TYPES}") from None
