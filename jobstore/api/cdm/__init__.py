"""Huawei CDM's named-job API over jobstore's jobs."""

from jobstore.api.cdm.routes import CdmConfig, cdm_routes

__all__ = ["CdmConfig", "cdm_routes"]
