"""Entry module for `dramatiq worker.actors` (what `portal worker` runs).

The broker is configured from the same settings as the web app before any actor is
declared, so actors bind to the right Redis.
"""

from portal.core.config import get_settings
from worker.broker import configure_broker

broker = configure_broker(get_settings().redis_url or "redis://127.0.0.1:6379/0")
