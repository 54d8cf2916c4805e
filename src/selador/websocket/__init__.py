"""WebSocket routes and the frame sender (PostToConnection)."""
