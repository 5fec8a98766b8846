"""Weakest example: visit the cities in the order given (scores 1.0)."""

import json
import sys

with open(sys.argv[1]) as source:
    cities = json.load(source)["cities"]
with open(sys.argv[2], "w") as target:
    json.dump({"tour": list(range(len(cities)))}, target)
