"""Selador streaming backend: one Lambda behind API Gateway WebSocket and HTTP APIs."""

__version__ = "0.1.0"
