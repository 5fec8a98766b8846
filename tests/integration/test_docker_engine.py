"""The engine evaluation relies on: an internal network that has no route out."""

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
