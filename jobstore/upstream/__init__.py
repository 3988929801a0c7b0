"""Calling upstream services: HTTP endpoints from a file, and a real Kinetica behind jobstore."""
