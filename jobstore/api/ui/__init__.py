"""The dashboard at /ui: server-rendered pages with a little JavaScript for live updates."""

from jobstore.api.ui.routes import Dashboard, UiConfig

__all__ = ["Dashboard", "UiConfig"]
