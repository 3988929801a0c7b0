"""Huawei CDM's named-job API over jobstore's jobs."""

from jobstore.api.cdm.routes import BASE, CDM_ERRORS, CdmConfig, cdm_routes

__all__ = ["BASE", "CDM_ERRORS", "CdmConfig", "cdm_routes"]
