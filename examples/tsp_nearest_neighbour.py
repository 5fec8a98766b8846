"""Middle example: always go to the nearest unvisited city."""

import json
import math
import sys

with open(sys.argv[1]) as source:
    cities = json.load(source)["cities"]

tour = [0]
unvisited = set(range(1, len(cities)))
while unvisited:
    here = cities[tour[-1]]
    nearest = min(unvisited, key=lambda i: math.dist(here, cities[i]))
    tour.append(nearest)
    unvisited.remove(nearest)
print(f"nearest neighbour tour over {len(cities)} cities")

with open(sys.argv[2], "w") as target:
    json.dump({"tour": tour}, target)
