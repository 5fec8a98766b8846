"""ASGI entry point for `portal serve` / any ASGI server: settings from the environment."""

from portal.core.config import get_settings
from portal.core.logging import configure_logging
from portal.main import create_app

_settings = get_settings()
configure_logging(_settings.log_level, _settings.log_json)
app = create_app(_settings)
