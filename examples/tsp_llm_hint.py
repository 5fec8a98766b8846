"""Example that asks the LLM for help, through the portal's gateway.

In an evaluation run the portal sets OPENAI_BASE_URL and OPENAI_API_KEY (a token valid
for this run only), so the official client works unchanged:

    from openai import OpenAI
    reply = OpenAI().chat.completions.create(model=..., messages=[...])

The evaluation image carries only the standard library, so this example speaks the same
HTTP API with urllib. It asks the model where to start the tour, then builds a nearest
neighbour tour from there. If the model cannot be reached (no gateway, the team's limit
used up) it says so in its log and starts at city 0: a submission should never fail only
because a hint was unavailable.
"""

import json
import math
import os
import re
import sys
import urllib.error
import urllib.request

MODEL = os.environ.get("PORTAL_LLM_MODEL", "echo")


def ask_model(question: str) -> str:
    base_url = os.environ["OPENAI_BASE_URL"].rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"OPENAI_BASE_URL is not an http(s) URL: {base_url!r}")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked just above
        f"{base_url}/chat/completions",
        data=json.dumps(
            {"model": MODEL, "messages": [{"role": "user", "content": question}]}
        ).encode(),
        headers={
            "Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        answer = json.load(response)
    usage = answer.get("usage", {})
    print(f"model used {usage.get('total_tokens', '?')} tokens")
    return answer["choices"][0]["message"]["content"]


def starting_city(count: int) -> int:
    question = (
        f"Which city should a tour over {count} cities start from? "
        f"Answer with one index, the last number you write, between 0 and {count - 1}."
    )
    try:
        reply = ask_model(question)
    except (KeyError, OSError, urllib.error.URLError, ValueError) as exc:
        print(f"no hint from the model ({exc}); starting at city 0")
        return 0
    print(f"model said: {reply[:200]}")
    numbers = [int(n) for n in re.findall(r"\d+", reply) if int(n) < count]
    return numbers[-1] if numbers else 0


with open(sys.argv[1]) as source:
    cities = json.load(source)["cities"]

start = starting_city(len(cities))
tour = [start]
unvisited = set(range(len(cities))) - {start}
while unvisited:
    here = cities[tour[-1]]
    nearest = min(unvisited, key=lambda i: math.dist(here, cities[i]))
    tour.append(nearest)
    unvisited.remove(nearest)
print(f"nearest neighbour tour from city {start} over {len(cities)} cities")

with open(sys.argv[2], "w") as target:
    json.dump({"tour": tour}, target)
