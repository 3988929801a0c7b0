"""Running jobs: endpoint registry, claim loop, leases, rescue."""
