"""Entry module for `dramatiq worker.actors` (what `portal worker` runs): settings come
from the environment, then the actors are declared on the configured Redis."""

import logging

from portal.core.config import get_settings
from portal.core.logging import configure_logging
from worker.tasks import setup

_settings = get_settings()
configure_logging(_settings.log_level, _settings.log_json)
logging.getLogger("dramatiq").setLevel(logging.INFO)
broker, context = setup(_settings)
