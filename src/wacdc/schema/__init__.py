"""Table model, introspection, type map, converters, target DDL and profiles."""
