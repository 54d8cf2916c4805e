"""The HTTP API (Powertools resolver) for callers that POST and wait."""
