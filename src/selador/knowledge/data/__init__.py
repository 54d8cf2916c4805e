"""Data tables bundled with the knowledge package (data only)."""
