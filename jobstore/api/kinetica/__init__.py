"""Kinetica's job API: /create/job, /get/job, /admin/show/jobs, /admin/alter/jobs."""

from jobstore.api.kinetica.routes import KineticaConfig, kinetica_routes

__all__ = ["KineticaConfig", "kinetica_routes"]
