"""Build the evaluation image, with or without a registry.

Online: `docker build` from python:3.12-slim. Offline (air-gapped sites, this project's
CI): debootstrap a minimal Debian with python3 from the machine's own Debian mirror,
`docker import` it as the base, then build the same Dockerfile on top.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

SANDBOX_DIR = Path(__file__).resolve().parent
OFFLINE_BASE = "portal-eval-base:bookworm"
APT_SOURCES = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]


def debian_mirror() -> str:
    """The Debian mirror this machine's apt already uses (no address is hard-coded)."""
    for path in APT_SOURCES:
        if not path.exists():
            continue
        text = path.read_text()
        for match in re.finditer(r"^URIs:\s*(\S+)", text, re.MULTILINE):
            if not match.group(1).rstrip("/").endswith("-security"):
                return match.group(1)
        for match in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+\s+main", text, re.M):
            if "security" not in match.group(1):
                return match.group(1)
    raise RuntimeError("no Debian mirror found in apt sources; pass --mirror")


def build_offline_base(mirror: str | None = None, suite: str = "bookworm") -> str:
    if not shutil.which("debootstrap"):
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="portal-rootfs-") as root:
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3",
                suite,
                root,
                mirror or debian_mirror(),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # Trim what a sandbox never needs: package caches and docs.
        for leftover in ("var/cache/apt/archives", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(Path(root, leftover), ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", "-", OFFLINE_BASE],
            stdin=tar.stdout,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if tar.wait() != 0:
            raise RuntimeError("packing the Debian root file system failed")
    return OFFLINE_BASE


def build_image(tag: str, *, offline: bool, mirror: str | None = None) -> None:
    base = build_offline_base(mirror) if offline else "python:3.12-slim"
    subprocess.run(
        [
            "docker",
            "build",
            "--pull=false",
            "--build-arg",
            f"BASE_IMAGE={base}",
            "-t",
            tag,
            str(SANDBOX_DIR),
        ],
        check=True,
    )
