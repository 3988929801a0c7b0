"""Endpoints: what a job runs. The registry, the handler's context, the built-ins."""
