"""Connection store: DynamoDB in AWS, SQLite locally, behind one interface.

``DynamoDbStore`` lives in :mod:`selador.store.dynamodb` and is deliberately not re-exported here:
importing this package must not import boto3/botocore.
"""

from selador.store.base import ConnectionRecord, ConnectionStore
from selador.store.factory import build_store
from selador.store.sqlite import SqliteStore

__all__ = ["ConnectionRecord", "ConnectionStore", "SqliteStore", "build_store"]
