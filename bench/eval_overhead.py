"""Evaluation pipeline overhead and batch throughput, against a bare `docker run`.

    uv run python bench/eval_overhead.py     (needs Docker and the portal-eval image)

Starts its own portal and workers on embedded services. Prints:
- per-run wall time of the whole pipeline (enqueue -> container -> score -> row written),
  from a batch of sequential runs at worker concurrency 1, against a bare
  `docker run --rm` of the same image and command measured in the same run, as a ratio;
- a 50-run batch's throughput (runs/s) at worker concurrency 1 and 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, os.path.dirname(__file__))
from _portal import ROOT, embedded_portal

sys.path.insert(0, str(ROOT))
from worker.kits import tsp

EXAMPLE = (ROOT / "examples" / "tsp_nearest_neighbour.py").read_bytes()
IMAGE = os.environ.get("PORTAL_EVAL_IMAGE", "portal-eval:latest")


def bare_docker_run(seed: int) -> float:
    with tempfile.TemporaryDirectory() as work:
        os.chmod(work, 0o777)
        Path(work, "solution.py").write_bytes(EXAMPLE)
        Path(work, "input.json").write_bytes(tsp.generate(seed))
        started = time.perf_counter()
        subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                f"{work}:/work",
                "-w",
                "/work",
                IMAGE,
                *tsp.COMMAND,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - started


class Portal:
    def __init__(self, url: str, token: str, env: dict) -> None:
        self.http = httpx.Client(
            base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}
        )
        self.env = env
        self.teams = 0

    def team_with_submission(self) -> None:
        self.teams += 1
        created = self.http.post(
            "/api/v1/teams",
            json={"name": f"bench {self.teams}", "email": f"bench{self.teams}@example.org"},
        )
        created.raise_for_status()
        token = created.json()["api_token"]
        upload = self.http.post(
            "/api/v1/submissions",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": ("s.py", EXAMPLE + f"# {self.teams}\n".encode(), "text/x-python")},
        )
        upload.raise_for_status()

    def timed_batch(self, seeds: list[int]) -> tuple[float, dict]:
        batch = self.http.post(
            "/api/v1/batches",
            json={"name": f"bench {time.time()}", "seeds": seeds, "selection": "unevaluated"},
        ).json()
        started = time.perf_counter()
        self.http.post(f"/api/v1/batches/{batch['id']}/start").raise_for_status()
        while True:
            detail = self.http.get(f"/api/v1/batches/{batch['id']}").json()
            if detail["status"] in ("finished", "cancelled"):
                return time.perf_counter() - started, detail
            time.sleep(0.05)

    def worker(self, threads: int) -> subprocess.Popen:
        env = {
            **self.env,
            "PORTAL_EVAL_RUNNER": "docker",
            "PORTAL_EVAL_IMAGE": IMAGE,
            "PORTAL_LOG_LEVEL": "WARNING",
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "portal.cli",
                "worker",
                "--processes",
                "1",
                "--threads",
                str(threads),
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(3)  # let it boot
        return process


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="sequential runs for the ratio")
    args = parser.parse_args()
    with embedded_portal() as (url, token, env):
        portal = Portal(url, token, env)
        bare = [bare_docker_run(seed) for seed in range(args.runs)]
        bare_mean = sum(bare) / len(bare)

        worker = portal.worker(threads=1)
        try:
            portal.team_with_submission()
            elapsed, detail = portal.timed_batch(list(range(args.runs)))
        finally:
            stop(worker)
        assert detail["progress"]["counts"] == {"scored": args.runs}, detail["progress"]
        pipeline_mean = elapsed / args.runs
        print(f"bare docker run --rm   {bare_mean * 1000:8.0f} ms per run ({args.runs} runs)")
        print(
            f"portal pipeline        {pipeline_mean * 1000:8.0f} ms per run "
            "(enqueue -> container -> score -> row)"
        )
        print(f"overhead ratio         {pipeline_mean / bare_mean:8.2f}x")

        for threads in (1, 2):
            for _ in range(5):
                portal.team_with_submission()
            worker = portal.worker(threads=threads)
            try:
                elapsed, detail = portal.timed_batch(list(range(100, 110)))
            finally:
                stop(worker)
            runs = detail["progress"]["total"]
            scored = detail["progress"]["counts"].get("scored", 0)
            print(
                f"50-run batch, {threads} thread(s): {runs} runs ({scored} scored) in "
                f"{elapsed:6.1f} s = {runs / elapsed:5.2f} runs/s"
            )


if __name__ == "__main__":
    main()
