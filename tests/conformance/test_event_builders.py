"""The event builders of ``selador.local.events`` that the gateway does not exercise.

The gateway builds WebSocket and HTTP API events with them, and ``test_gateway_conformance`` checks
those on the wire. REST v1 is not served, so its builder (used by tests) is compared here directly.
"""

from __future__ import annotations

from selador.local.events import rest_v1_event

from .shapes import (
    domain_problems,
    id_problems,
    load,
    shape_differences,
    time_problems,
    validate_with_powertools,
)


def test_the_rest_v1_builder_matches_the_fixture() -> None:
    fixture = load("rest_v1_invoke.json")
    event = rest_v1_event(
        "POST", "/invoke", body=fixture["body"], headers={"Content-Type": "application/json"}
    )
    validate_with_powertools(event)
    assert shape_differences(fixture, event) == []
    assert id_problems(event) + time_problems(event) + domain_problems(event) == []
