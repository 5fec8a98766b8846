"""The sandboxes' one door out: a relay container in front of the gateway-only listener.

An internal Docker network has no route out, but by default the host still has an
address on it, so anything the host serves on all interfaces would be reachable from a
sandbox. The evaluation network is therefore created with the host's address withheld
(`com.docker.network.bridge.inhibit_ipv4`): on it there are only the sandboxes and this
relay. The relay (the evaluation image, standard library only, unprivileged, read-only)
also sits on a small uplink network and forwards one port to the gateway-only listener,
which binds the host's address on that uplink.

Production (compose.yaml) needs no relay: the `llm-gateway` service itself joins the
evaluation network. `portal dev` and the tests, whose gateway runs on the host, use this.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging

import docker
from docker.errors import NotFound
from docker.models.containers import Container
from docker.models.networks import Network

from worker.sandbox.base import SandboxError

logger = logging.getLogger(__name__)

RELAY_ALIAS = "llm-gateway"
RELAY_PORT = 8001
RELAY_LABEL = "portal.llm-relay"
# The host's address on a network it must not be reachable from is withheld.
WITHOUT_HOST_ADDRESS = {"com.docker.network.bridge.inhibit_ipv4": "true"}

# Byte-for-byte TCP forwarding, one connection at a time per client; no parsing at all,
# so the gateway sees exactly what the sandbox sent.
RELAY_SCRIPT = """
import asyncio, sys
target_host, target_port, listen_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()

async def handle(client_reader, client_writer):
    try:
        reader, writer = await asyncio.open_connection(target_host, target_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, writer), pipe(reader, client_writer))

async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", listen_port)
    print("relay ready", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


def _network(
    client: docker.DockerClient,
    name: str,
    *,
    internal: bool = False,
    options: dict[str, str] | None = None,
) -> Network:
    try:
        return client.networks.get(name)
    except NotFound:
        return client.networks.create(name, driver="bridge", internal=internal, options=options)


def gateway_address(network: Network) -> str:
    """The host's IPv4 address on a Docker bridge network."""
    network.reload()
    address = host_address_in(network.attrs.get("IPAM") or {})
    if address is None:
        raise SandboxError(f"Docker network {network.name!r} has no IPv4 subnet for the host")
    return address


def host_address_in(ipam: dict) -> str | None:
    """The host's IPv4 address from a network's IPAM settings.

    IPAM usually names it as `Gateway`, but not always: on an engine's very first start
    the default `bridge` network lists only its `Subnet`. The engine gives the host the
    subnet's first address then, so that is what an unnamed gateway is.
    """
    configs = ipam.get("Config") or []
    for config in configs:
        gateway = config.get("Gateway")
        if gateway and ipaddress.ip_address(gateway).version == 4:
            return gateway
    for config in configs:
        subnet = ipaddress.ip_network(config.get("Subnet") or "::/128", strict=False)
        if subnet.version == 4:
            return str(next(subnet.hosts()))
    return None


def check_evaluation_network(client: docker.DockerClient, name: str) -> None:
    """Refuse a PORTAL_EVAL_NETWORK that would let sandboxes out or onto the host."""
    try:
        network = client.networks.get(name)
    except NotFound as exc:
        raise SandboxError(
            f"PORTAL_EVAL_NETWORK {name!r} does not exist; create it with "
            f"`docker network create --internal -o "
            f"com.docker.network.bridge.inhibit_ipv4=true {name}`"
        ) from exc
    if not network.attrs.get("Internal"):
        raise SandboxError(f"PORTAL_EVAL_NETWORK {name!r} is not internal: sandboxes could get out")
    options = network.attrs.get("Options") or {}
    if options.get("com.docker.network.bridge.inhibit_ipv4") != "true":
        logger.warning(
            "the host has an address on PORTAL_EVAL_NETWORK %r: sandboxes can reach any host "
            "service listening on all interfaces; recreate it with -o "
            "com.docker.network.bridge.inhibit_ipv4=true",
            name,
        )


class LlmRelay:
    def __init__(self, client: docker.DockerClient, image: str, network: str) -> None:
        self.client = client
        self.image = image
        self.network = network
        self.uplink = f"{network}-uplink"
        self.container: Container | None = None

    def prepare(self) -> str:
        """Create both networks if needed; return where the gateway listener must bind."""
        self.remove_leftovers()
        evaluation = _network(
            self.client, self.network, internal=True, options=WITHOUT_HOST_ADDRESS
        )
        if not evaluation.attrs.get("Internal") or any(
            (evaluation.attrs.get("Options") or {}).get(key) != value
            for key, value in WITHOUT_HOST_ADDRESS.items()
        ):
            # Ours (the relay's network), left by an older setup that let sandboxes reach
            # the host: make it again rather than run with that hole.
            try:
                evaluation.remove()
            except docker.errors.APIError as exc:
                raise SandboxError(
                    f"Docker network {self.network!r} lets sandboxes reach the host and "
                    f"cannot be recreated ({exc}); remove it with `docker network rm`"
                ) from exc
            evaluation = _network(
                self.client, self.network, internal=True, options=WITHOUT_HOST_ADDRESS
            )
        check_evaluation_network(self.client, self.network)
        return gateway_address(_network(self.client, self.uplink))

    def start(self, listener_host: str, listener_port: int) -> str:
        """Start the relay (after prepare); return the gateway's URL as sandboxes see it."""
        self.container = self.client.containers.run(
            self.image,
            ["python3", "-c", RELAY_SCRIPT, listener_host, str(listener_port), str(RELAY_PORT)],
            detach=True,
            name=f"{self.network}-relay",
            network=self.uplink,
            user="65534:65534",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit="64m",
            pids_limit=32,
            labels={RELAY_LABEL: self.network},
        )
        self.client.networks.get(self.network).connect(self.container, aliases=[RELAY_ALIAS])
        for line in self.container.logs(stream=True, follow=True):
            if b"relay ready" in line:
                break
        else:
            raise SandboxError(f"the LLM relay did not start: {self.container.logs()[-500:]!r}")
        return f"http://{RELAY_ALIAS}:{RELAY_PORT}/llm/v1"

    def remove_leftovers(self) -> None:
        for container in self.client.containers.list(
            all=True, filters={"label": f"{RELAY_LABEL}={self.network}"}, ignore_removed=True
        ):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)

    def stop(self) -> None:
        self.remove_leftovers()
        self.container = None
