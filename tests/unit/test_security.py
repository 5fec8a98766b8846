import hashlib

from portal.core.logging import redact
from portal.core.security import (
    SessionData,
    SessionSigner,
    hash_token,
    new_api_token,
    visible_prefix,
)


def test_api_tokens_are_long_random_and_prefixed():
    tokens = {new_api_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert token.startswith("pt_")
        # token_urlsafe(32): 32 random bytes = 256 bits, 43 base64url characters
        assert len(token) == 3 + 43


def test_token_hash_is_sha256_and_prefix_is_short():
    token = new_api_token()
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token.startswith(visible_prefix(token))
    assert len(visible_prefix(token)) <= 10


def test_session_cookie_rejects_tampering_and_other_keys():
    signer = SessionSigner("one-secret-key-long-enough-xxxxxxxxxx", 3600)
    cookie = signer.dumps(SessionData(csrf="abc", team_id=7, epoch=2, session_id="s"))
    assert signer.loads(cookie) == SessionData(csrf="abc", team_id=7, epoch=2, session_id="s")
    assert signer.loads(cookie[:-2] + "xx") is None
    other = SessionSigner("another-secret-key-long-enough-yyyyyyy", 3600)
    assert other.loads(cookie) is None


def test_login_issues_fresh_session_id_and_csrf():
    first = SessionSigner.new_login(1, 0)
    second = SessionSigner.new_login(1, 0)
    assert first.session_id != second.session_id
    assert first.csrf != second.csrf


def test_redaction_removes_tokens_in_every_form():
    token = new_api_token()
    line = (
        f"GET /login?token={token}&x=1 Authorization: Bearer {token} "
        f'{{"api_token": "{token}"}} api_key=sk-secret'
    )
    cleaned = redact(line)
    assert token not in cleaned
    assert "sk-secret" not in cleaned
    assert "x=1" in cleaned
