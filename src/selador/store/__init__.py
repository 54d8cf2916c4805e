"""Connection store: DynamoDB in AWS, SQLite locally, behind one interface."""

from selador.store.base import ConnectionRecord, ConnectionStore

__all__ = ["ConnectionRecord", "ConnectionStore"]
