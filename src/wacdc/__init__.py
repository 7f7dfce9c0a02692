"""wacdc: zero-downtime MySQL -> PostgreSQL change-data-capture."""

__version__ = "0.1.0"
