"""Huawei CDM named jobs: definitions started with variables, followed as submissions."""
