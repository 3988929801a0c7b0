"""Kinetica's job API: /create/job, /get/job, /admin/show/jobs, /admin/alter/jobs."""

from jobstore.api.kinetica.routes import ENVELOPE_ERRORS, KineticaConfig, kinetica_routes

__all__ = ["ENVELOPE_ERRORS", "KineticaConfig", "kinetica_routes"]
