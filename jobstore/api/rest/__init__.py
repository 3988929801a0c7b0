"""The native JSON REST API under /api/v1, described by OpenAPI 3.1."""

from jobstore.api.rest.problems import PROBLEM_ERRORS
from jobstore.api.rest.routes import RestConfig, rest_routes

__all__ = ["PROBLEM_ERRORS", "RestConfig", "rest_routes"]
