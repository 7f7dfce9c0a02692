"""The MySQL/MariaDB side: connections, server facts, snapshot reads, binlog reader."""
