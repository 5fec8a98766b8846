"""The gateway's upstream transport against scripted HTTP servers on loopback.

Each server's answers are scripted byte for byte, so the cases a library usually hides
can be forced: idle connections closed by the server, bodies that end at close, chunked
streams, answers that never come or come garbled.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portal.llm.upstream import UpstreamTransport
from tests.fixtures.servers import OK, ScriptedServer, answer_ok, answer_with


def client(url: str, **limits) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        transport=UpstreamTransport(httpx.Limits(**limits) if limits else None),
        timeout=httpx.Timeout(5.0),
    )


async def test_calls_reuse_one_kept_alive_connection_and_send_the_body():
    async with ScriptedServer(answer_ok) as server, client(server.url) as http:
        for index in range(20):
            response = await http.post("/v1/chat/completions", content=f"call {index}".encode())
            assert (response.status_code, response.json()) == (200, {"ok": True})
        assert server.connections == 1
        assert server.requests[3].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        assert server.requests[3].endswith(b"\r\n\r\ncall 3")


async def test_a_chunked_stream_arrives_piece_by_piece():
    release_last = asyncio.Event()

    async def stream(reader, writer, n) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n")
        writer.write(b"transfer-encoding: chunked\r\n\r\n")
        writer.write(b"7\r\ndata: 1\r\n")
        await writer.drain()
        await release_last.wait()
        writer.write(b"7\r\ndata: 2\r\n0\r\n\r\n")
        await writer.drain()
        return True

    async with ScriptedServer(stream) as server, client(server.url) as http:
        async with http.stream("POST", "/v1/chat/completions", content=b"{}") as response:
            pieces = response.aiter_bytes()
            assert await anext(pieces) == b"data: 1"  # before the server sent the rest
            release_last.set()
            assert b"".join([piece async for piece in pieces]) == b"data: 2"
        second = await http.post("/v1/chat/completions", content=b"{}")
        assert second.status_code == 200
        assert server.connections == 1  # the finished stream's connection was reused


async def test_a_body_that_ends_at_close_is_read_whole_and_the_connection_dropped():
    until_close = answer_with(
        b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it, then EOF", keep_open=False
    )
    async with ScriptedServer(until_close) as server, client(server.url) as http:
        for _ in range(2):
            response = await http.get("/v1/models")
            assert response.content == b"all of it, then EOF"
        assert server.connections == 2


async def test_an_idle_connection_the_server_closed_is_retried_on_a_fresh_one():
    async def one_answer_then_hang_up(reader, writer, n) -> bool:
        if n % 2 == 0:
            return False  # closes with the request unanswered, as an idle timeout does
        writer.write(OK)
        await writer.drain()
        return True

    async with ScriptedServer(one_answer_then_hang_up) as server, client(server.url) as http:
        assert (await http.get("/v1/models")).status_code == 200
        # The server hangs up on this one's first try (the reused connection), answers
        # the second (a fresh connection): the caller sees one success.
        assert (await http.get("/v1/models")).status_code == 200
        assert server.connections == 2
        assert len(server.requests) == 3


async def test_a_fresh_connection_closed_without_an_answer_is_an_error_not_a_retry():
    async def hang_up(reader, writer, n) -> bool:
        return False

    async with ScriptedServer(hang_up) as server, client(server.url) as http:
        with pytest.raises(httpx.RemoteProtocolError, match="without answering"):
            await http.get("/v1/models")
        assert server.connections == 1


async def test_a_slow_answer_is_a_read_timeout_and_that_connection_is_not_reused():
    async def slow_first(reader, writer, n) -> bool:
        if n == 1:
            await asyncio.sleep(1.0)
        writer.write(OK)
        await writer.drain()
        return True

    async with ScriptedServer(slow_first) as server:
        transport = UpstreamTransport()
        async with httpx.AsyncClient(
            base_url=server.url, transport=transport, timeout=httpx.Timeout(5.0, read=0.2)
        ) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get("/v1/models")
            # Its late answer must not be read as the answer to the next request.
            await asyncio.sleep(1.0)
            assert (await http.get("/v1/models")).json() == {"ok": True}
            assert server.connections == 2


async def test_nobody_listening_is_a_connect_error():
    async with ScriptedServer(answer_ok) as server:
        url = server.url
    async with client(url) as http:
        with pytest.raises(httpx.ConnectError, match="cannot connect"):
            await http.get("/v1/models")


async def test_a_garbled_answer_is_a_protocol_error():
    async with (
        ScriptedServer(answer_with(b"SPDY/9 banana\r\n\r\n")) as server,
        client(server.url) as http,
    ):
        with pytest.raises(httpx.RemoteProtocolError, match="malformed"):
            await http.get("/v1/models")


async def test_the_pool_never_opens_more_than_its_limit():
    async def slowly(reader, writer, n) -> bool:
        await asyncio.sleep(0.1)
        writer.write(OK)
        await writer.drain()
        return True

    async with ScriptedServer(slowly) as server, client(server.url, max_connections=2) as http:
        responses = await asyncio.gather(*(http.get("/v1/models") for _ in range(8)))
        assert [response.status_code for response in responses] == [200] * 8
        assert server.most_open == 2


async def test_an_abandoned_stream_frees_its_slot_and_its_connection_is_not_reused():
    async def endless(reader, writer, n) -> bool:
        if n > 1:
            writer.write(OK)
            await writer.drain()
            return True
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(100):
            writer.write(b"5\r\nhello\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)
        return False

    async with ScriptedServer(endless) as server, client(server.url, max_connections=1) as http:
        async with http.stream("GET", "/v1/models") as response:
            assert await anext(response.aiter_bytes()) == b"hello"
        # The only slot is free again, and the next call does not read leftover chunks.
        assert (await http.get("/v1/models")).json() == {"ok": True}
        assert server.connections == 2


def self_signed_certificate(tmp_path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


async def test_https_upstreams_are_verified(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def handle(reader, writer) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        trusting = ssl.create_default_context(cafile=cert)
        async with httpx.AsyncClient(transport=UpstreamTransport(ssl_context=trusting)) as http:
            assert (await http.get(f"{url}/v1/models")).json() == {"ok": True}
        # Without the certificate in its trust store the default context refuses.
        async with httpx.AsyncClient(transport=UpstreamTransport()) as http:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.get(f"{url}/v1/models")
    finally:
        server.close()
