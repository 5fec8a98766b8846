from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    # Short timeouts: a dead Redis must turn into a quick 503, not a hung request.
    return Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
        decode_responses=False,
    )
