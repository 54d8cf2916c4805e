"""ManagementApi against a real boto3 client with botocore's Stubber (moto never answers 410/429)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from selador.local.events import connect_event
from selador.settings import Settings
from selador.websocket.management import (
    ConnectionGone,
    ManagementApi,
    PostFailed,
    management_api_for,
    resolve_endpoint,
)

ENDPOINT = "https://abc123.execute-api.us-west-2.amazonaws.com/production"


@pytest.fixture
def client():
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=ENDPOINT,
        region_name="us-west-2",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_post_delivers(client) -> None:
    with Stubber(client) as stub:
        stub.add_response("post_to_connection", {}, {"ConnectionId": "c1=", "Data": b"hi"})
        ManagementApi(client).post("c1=", b"hi")
        stub.assert_no_pending_responses()


def test_gone_raises_without_retry(client) -> None:
    with Stubber(client) as stub:
        stub.add_client_error("post_to_connection", "GoneException", http_status_code=410)
        with pytest.raises(ConnectionGone):
            ManagementApi(client, sleep=lambda s: None).post("c1=", b"x")
        stub.assert_no_pending_responses()


def test_throttling_is_retried_with_bounded_jittered_backoff(client) -> None:
    sleeps: list[float] = []
    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_client_error("post_to_connection", "LimitExceededException", http_status_code=429)
        stub.add_response("post_to_connection", {})
        api = ManagementApi(client, max_attempts=6, base_delay=0.05, max_delay=2.0, sleep=sleeps.append)
        api.post("c1=", b"x")
        stub.assert_no_pending_responses()
    assert len(sleeps) == 3
    assert all(0 <= s <= 0.05 * 2**i for i, s in enumerate(sleeps))
    assert api.throttled == 3


def test_throttling_past_the_bound_fails(client) -> None:
    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_client_error("post_to_connection", "LimitExceededException", http_status_code=429)
        with pytest.raises(PostFailed, match="LimitExceededException after 3"):
            ManagementApi(client, max_attempts=3, sleep=lambda s: None).post("c1=", b"x")


def test_forbidden_and_too_large_are_not_retried(client) -> None:
    with Stubber(client) as stub:
        stub.add_client_error("post_to_connection", "ForbiddenException", http_status_code=403)
        stub.add_client_error("post_to_connection", "PayloadTooLargeException", http_status_code=413)
        api = ManagementApi(client, sleep=lambda s: None)
        with pytest.raises(PostFailed, match="Forbidden"):
            api.post("c1=", b"x")
        with pytest.raises(PostFailed, match="PayloadTooLarge"):
            api.post("c1=", b"x")


def test_delete_reports_gone(client) -> None:
    with Stubber(client) as stub:
        stub.add_response("delete_connection", {})
        stub.add_client_error("delete_connection", "GoneException", http_status_code=410)
        api = ManagementApi(client)
        assert api.delete("c1=") is True
        assert api.delete("c1=") is False


def test_endpoint_prefers_setting_then_api_id() -> None:
    event = connect_event(api_id="myapi", stage="dev", domain="chat.example.com")
    assert resolve_endpoint(event, Settings(aws_region="eu-west-1")) == (
        "https://myapi.execute-api.eu-west-1.amazonaws.com/dev"
    )
    configured = Settings(websocket_management_endpoint="http://127.0.0.1:3001/production/")
    assert resolve_endpoint(event, configured) == "http://127.0.0.1:3001/production"


def test_client_is_shared_per_endpoint() -> None:
    settings = Settings(management_connect_timeout=1.5, management_read_timeout=4.0)
    a = management_api_for(ENDPOINT, settings)
    b = management_api_for(ENDPOINT, settings)
    c = management_api_for(ENDPOINT + "x", settings)
    assert a.client is b.client
    assert a.client is not c.client
    assert a.client.meta.config.connect_timeout == 1.5
    assert a.client.meta.config.read_timeout == 4.0
