"""Evaluation pipeline overhead and batch throughput, against a bare `docker run`.

    uv run python bench/eval_overhead.py     (needs Docker and the portal-eval image)

Starts its own portal and workers on embedded services. Prints:
- per-run wall time of the whole pipeline (enqueue -> container -> score -> row written),
  from a batch of sequential runs at worker concurrency 1, against a bare
  `docker run --rm` of the same image and command measured in the same run, as a ratio
  (the goal: at most 1.5x). Rounds alternate bare runs and batches, and the medians of
  the rounds are compared, so a noisy neighbour hits both sides alike. Beside them, the
  same `docker run` with the sandbox's isolation flags (read-only root, tmpfs, caps,
  limits), to show what the isolation itself costs;
- a 50-run batch's throughput (runs/s) at worker concurrency 1 and 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
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


ISOLATION_FLAGS = [
    "--read-only",
    "--tmpfs",
    "/tmp:rw,noexec,nosuid,nodev,size=64m",
    "--memory",
    "512m",
    "--memory-swap",
    "512m",
    "--cpus",
    "1",
    "--pids-limit",
    "64",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--user",
    "65534:65534",
]


def bare_docker_run(seed: int, isolated: bool = False) -> float:
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
                *(ISOLATION_FLAGS if isolated else []),
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
    parser.add_argument("--runs", type=int, default=10, help="sequential runs per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args()
    with embedded_portal() as (url, token, env):
        portal = Portal(url, token, env)
        bare, isolated, pipeline = [], [], []
        worker = portal.worker(threads=1)
        try:
            for round_number in range(args.rounds):
                seeds = list(range(round_number * 1000, round_number * 1000 + args.runs))
                bare.append(statistics.mean(bare_docker_run(seed) for seed in seeds))
                isolated.append(
                    statistics.mean(bare_docker_run(seed, isolated=True) for seed in seeds)
                )
                portal.team_with_submission()
                elapsed, detail = portal.timed_batch(seeds)
                assert detail["progress"]["counts"] == {"scored": args.runs}, detail["progress"]
                pipeline.append(elapsed / args.runs)
                print(
                    f"round {round_number + 1}: bare {bare[-1] * 1000:.0f} ms, "
                    f"bare with isolation flags {isolated[-1] * 1000:.0f} ms, "
                    f"pipeline {pipeline[-1] * 1000:.0f} ms per run"
                )
        finally:
            stop(worker)
        bare_median, pipeline_median = statistics.median(bare), statistics.median(pipeline)
        isolated_median = statistics.median(isolated)
        print(f"bare docker run --rm   {bare_median * 1000:8.0f} ms per run (median of rounds)")
        print(
            f"  with isolation flags {isolated_median * 1000:8.0f} ms per run "
            f"({isolated_median / bare_median:.2f}x bare)"
        )
        print(
            f"portal pipeline        {pipeline_median * 1000:8.0f} ms per run "
            "(enqueue -> container -> score -> row)"
        )
        print(f"overhead ratio         {pipeline_median / bare_median:8.2f}x (goal: at most 1.5x)")

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
