"""Observability: metrics, the HTTP face, the status read model, lag."""
