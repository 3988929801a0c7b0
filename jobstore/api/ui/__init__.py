"""The dashboard at /ui: server-rendered pages with a little JavaScript for live updates."""

from jobstore.api.ui.routes import UiConfig, ui_routes

__all__ = ["UiConfig", "ui_routes"]
