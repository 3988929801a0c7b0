"""Limits the facades share, kept free of Starlette so the CLI can read them cheaply."""

# The largest request body a facade reads, unless the node is told otherwise.
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
