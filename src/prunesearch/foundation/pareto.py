"""Pareto dominance among points whose every coordinate is maximised: a study's front over
its candidates, and the order in which early stopping promotes trials."""

from collections.abc import Sequence

Point = Sequence[float]


def dominates(a: Point, b: Point) -> bool:
    """`a` is at least as good as `b` everywhere and better somewhere."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def ranks(points: Sequence[Point]) -> list[int]:
    """Non-dominated sorting: 0 for the front, 1 for the front of what is left, and so on."""
    result = [-1] * len(points)
    left = set(range(len(points)))
    rank = 0
    while left:
        layer = {i for i in left if not any(dominates(points[j], points[i]) for j in left)}
        for i in layer:
            result[i] = rank
        left -= layer
        rank += 1
    return result


def crowding(points: Sequence[Point]) -> list[float]:
    """NSGA-II's crowding distance of each point among `points` (one front): the extremes of
    every coordinate are infinite, the others the sum of their neighbours' normalised gaps. A
    larger distance is a point the front would miss more."""
    distance = [0.0] * len(points)
    for axis in range(len(points[0]) if points else 0):
        order = sorted(range(len(points)), key=lambda i: points[i][axis])
        low, high = points[order[0]][axis], points[order[-1]][axis]
        distance[order[0]] = distance[order[-1]] = float("inf")
        if high == low:
            continue
        for before, here, after in zip(order, order[1:], order[2:]):
            distance[here] += (points[after][axis] - points[before][axis]) / (high - low)
    return distance


def optimal(points: Sequence[Point]) -> list[int]:
    """Indices of the points no other point dominates, in O(n x front size): in decreasing
    lexicographic order a point's dominators all come before it, and one of them is kept."""
    kept = []
    for i in sorted(range(len(points)), key=lambda i: tuple(points[i]), reverse=True):
        if not any(dominates(points[j], points[i]) for j in kept):
            kept.append(i)
    return sorted(kept)
