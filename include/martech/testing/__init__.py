"""Test doubles that speak real protocols on loopback (used by tests and benchmarks)."""
