"""The engine evaluation relies on: an internal network that has no route out."""

import contextlib
import time
import uuid


def test_engine_creates_and_removes_an_internal_network(docker_client):
    name = f"portal-test-{uuid.uuid4().hex[:8]}"
    network = docker_client.networks.create(
        name, driver="bridge", internal=True, labels={"portal.test": "1"}
    )
    try:
        network.reload()
        assert network.attrs["Internal"] is True
        assert network.attrs["Labels"]["portal.test"] == "1"
    finally:
        network.remove()
    assert not docker_client.networks.list(names=[name])


def test_a_worker_cleans_up_only_its_own_deployments_leftovers(docker_client, eval_image):
    """Two portals (or test sessions) on one engine: run ids repeat across them, and a
    worker booting in one must not take the other's running containers for leftovers."""
    from worker.sandbox.docker_runner import DEPLOYMENT_LABEL, LABEL, DockerRunner

    ours = DockerRunner(eval_image, client=docker_client, deployment="ours")
    theirs = DockerRunner(eval_image, client=docker_client, deployment="theirs")
    running = docker_client.containers.run(
        eval_image,
        ["sleep", "60"],
        detach=True,
        labels={LABEL: "1", DEPLOYMENT_LABEL: "theirs", "portal.run_id": "7"},
    )
    try:
        assert ours.remove_leftovers(alive_run_ids=set()) == 0
        assert ours.kill_run_containers(7) == 0
        running.reload()
        assert running.status == "running"
        assert theirs.remove_leftovers(alive_run_ids=set()) == 1
        assert not docker_client.containers.list(all=True, filters={"id": running.id})
    finally:
        with contextlib.suppress(Exception):
            running.remove(force=True)


def test_the_deployment_id_names_the_database_never_its_password():
    from portal.core.config import Settings

    def deployment(url: str) -> str:
        return Settings(database_url=url).deployment_id

    first = deployment("postgresql://portal:secret@db:5432/portal")
    assert first == deployment("postgresql://portal:other-password@db:5432/portal")
    assert first != deployment("postgresql://portal:secret@db:5432/staging")
    assert "secret" not in first


def test_sweeping_leftovers_while_runs_end_by_themselves(docker_client, eval_image):
    """A finished run's container removes itself (auto-remove) at any moment, including
    between the engine listing it and the worker looking at it: the sweep must take that
    for "gone", not fail (it once raised NotFound mid-sweep)."""
    from worker.sandbox.docker_runner import DEPLOYMENT_LABEL, LABEL, DockerRunner

    deployment = f"ending-{uuid.uuid4().hex[:8]}"
    runner = DockerRunner(eval_image, client=docker_client, deployment=deployment)
    run_ids = set(range(1, 25))
    for run_id in run_ids:
        docker_client.containers.run(
            eval_image,
            ["sleep", f"{0.5 + run_id * 0.08:.2f}"],
            detach=True,
            auto_remove=True,
            labels={LABEL: "1", DEPLOYMENT_LABEL: deployment, "portal.run_id": str(run_id)},
        )

    def ours_left() -> list:
        label = f"{DEPLOYMENT_LABEL}={deployment}"
        return docker_client.containers.list(all=True, filters={"label": label}, sparse=True)

    try:
        deadline = time.monotonic() + 30
        while ours_left() and time.monotonic() < deadline:
            assert runner.remove_leftovers(alive_run_ids=run_ids) == 0
        assert ours_left() == []
    finally:
        runner.remove_leftovers(alive_run_ids=set())
