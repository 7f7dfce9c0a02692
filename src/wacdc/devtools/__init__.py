"""Development tooling: embedded servers, data generator, demo. Never imported by the daemon."""
