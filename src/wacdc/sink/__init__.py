"""The PostgreSQL side: connections, COPY and batched upsert/delete."""
