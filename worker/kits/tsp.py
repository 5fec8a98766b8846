"""Default kit: a travelling-salesman tour over seeded random cities.

Input (input.json): {"cities": [[x, y], ...]} with 80 to 159 cities in the unit square.
Answer (answer.json): {"tour": [i0, i1, ...]}, a permutation of the city indices.
Score: the length of the tour that visits cities in input order, divided by the length
of the submitted tour. Input order scores 1.0; better tours score more (nearest
neighbour about 3.5, with 2-opt about 4); scores spread, so the board means something.
"""

from __future__ import annotations

import json
import math
import random

from worker.kits.base import InvalidAnswer, Score, read_json_answer

NAME = "tsp"
INPUT_FILE = "input.json"
ANSWER_FILE = "answer.json"
COMMAND = ["python3", "solution.py", INPUT_FILE, ANSWER_FILE]
FAILED_RUN_SCORE = 0.0


def cities_for(seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    count = 80 + rng.randrange(80)
    return [(round(rng.random(), 6), round(rng.random(), 6)) for _ in range(count)]


def generate(seed: int) -> bytes:
    return json.dumps({"seed": seed, "cities": cities_for(seed)}).encode()


def tour_length(cities: list[tuple[float, float]], tour: list[int]) -> float:
    return sum(
        math.dist(cities[tour[i]], cities[tour[(i + 1) % len(tour)]]) for i in range(len(tour))
    )


def score(seed: int, input_bytes: bytes, answer_bytes: bytes) -> Score:
    cities = [tuple(c) for c in json.loads(input_bytes)["cities"]]
    answer = read_json_answer(answer_bytes, ANSWER_FILE)
    tour = answer.get("tour") if isinstance(answer, dict) else None
    if not isinstance(tour, list) or not all(isinstance(i, int) for i in tour):
        raise InvalidAnswer('answer.json must be {"tour": [city indices]}')
    if sorted(tour) != list(range(len(cities))):
        raise InvalidAnswer(
            f"the tour must visit each of the {len(cities)} cities exactly once "
            f"(got {len(tour)} entries, {len(set(tour))} distinct)"
        )
    baseline = tour_length(cities, list(range(len(cities))))
    length = tour_length(cities, tour)
    return Score(
        round(baseline / length, 6),
        {
            "tour_length": round(length, 6),
            "baseline_length": round(baseline, 6),
            "cities": len(cities),
        },
    )
