"""What tests share: private servers, the workload, independent comparators, the daemon."""
