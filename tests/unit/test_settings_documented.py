from pathlib import Path

from portal.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _documented(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.lstrip("# ").strip()
        if line.startswith("PORTAL_") and "=" in line:
            names.add(line.split("=", 1)[0])
    return names


def test_every_setting_is_in_env_example_and_readme():
    expected = {f"PORTAL_{name.upper()}" for name in Settings.model_fields}
    assert _documented(ROOT / ".env.example") == expected
    readme = (ROOT / "README.md").read_text()
    missing = sorted(name for name in expected if f"`{name}`" not in readme)
    assert not missing, f"README settings table lacks {missing}"
