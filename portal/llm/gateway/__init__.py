"""The OpenAI-compatible LLM gateway: authenticate, hold the team to its limit, forward.

The hot path is kept short on purpose: one indexed query for the caller, one Lua call
for the limit, one pooled upstream request, and a log entry appended to a buffer that a
background task writes (usage_log.py). Errors use OpenAI's shape, so the standard
clients raise their usual exceptions (RateLimitError, AuthenticationError, ...).

  errors.py   OpenAI's error shape and the gateway's failures in it
  service.py  Gateway: caller lookup (briefly cached), rate limit, upstream, usage log
  routes.py   /llm/v1/chat/completions and /llm/v1/models
  fastpath.py serves those routes before FastAPI's routing (see why there)
"""
