import pytest
from pydantic import ValidationError

from portal.core.config import EXAMPLE_SECRET_KEY, Settings


def test_production_refuses_the_example_secret():
    settings = Settings(
        environment="production",
        secret_key=EXAMPLE_SECRET_KEY,
        database_url="postgresql://db/portal",
        redis_url="redis://redis:6379/0",
    )
    with pytest.raises(RuntimeError, match="PORTAL_SECRET_KEY"):
        settings.check_safe_for_production()


def test_production_refuses_embedded_services():
    settings = Settings(environment="production", secret_key="x" * 40)
    with pytest.raises(RuntimeError, match="PORTAL_DATABASE_URL"):
        settings.check_safe_for_production()


def test_unknown_timezone_is_refused_with_a_hint():
    with pytest.raises(ValidationError, match="IANA"):
        Settings(timezone="Mars/Olympus")


def test_a_work_dir_that_does_not_fit_in_the_memory_cap_is_refused_with_a_hint():
    with pytest.raises(
        ValidationError, match=r"PORTAL_EVAL_WORK_MIB .* below PORTAL_EVAL_MEMORY_MIB"
    ):
        Settings(eval_memory_mib=256, eval_work_mib=256)
