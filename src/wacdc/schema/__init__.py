"""The table model, type families, converters, target DDL and profiles: server-independent."""
