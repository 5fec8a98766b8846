"""Strongest example: nearest neighbour, then 2-opt until no swap shortens the tour."""

import json
import math
import sys

with open(sys.argv[1]) as source:
    cities = json.load(source)["cities"]
n = len(cities)


def d(a, b):
    return math.dist(cities[a], cities[b])


tour = [0]
unvisited = set(range(1, n))
while unvisited:
    nearest = min(unvisited, key=lambda i: d(tour[-1], i))
    tour.append(nearest)
    unvisited.remove(nearest)

improved = True
while improved:
    improved = False
    for i in range(1, n - 1):
        for j in range(i + 1, n):
            a, b, c, e = tour[i - 1], tour[i], tour[j], tour[(j + 1) % n]
            if d(a, c) + d(b, e) < d(a, b) + d(c, e) - 1e-12:
                tour[i : j + 1] = reversed(tour[i : j + 1])
                improved = True
print("2-opt finished")

with open(sys.argv[2], "w") as target:
    json.dump({"tour": tour}, target)
