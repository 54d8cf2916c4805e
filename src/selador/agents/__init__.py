"""Agents: routing specs, tools, the offline responder and the orchestrator.

Importing this package stays light (no strands): the WebSocket routes that never run an agent
import it without paying strands' ~0.8 s import. Import :mod:`selador.agents.orchestrator` for
:func:`~selador.agents.orchestrator.run_query`.
"""

from selador.agents.specs import AGENT_SPECS, QUERY_ROUTES, AgentSpec, spec_for_query_type

__all__ = ["AGENT_SPECS", "QUERY_ROUTES", "AgentSpec", "spec_for_query_type"]
