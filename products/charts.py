"""A product's stock over time, from the ledger, as an SVG drawn on the server: no
script, no asset from elsewhere, the same picture in every browser.

A product with thousands of movements is drawn from at most MAX_POINTS points: the
ledger is cut into equal runs of movements and each run keeps its lowest and its highest
level, in the order they came, so that a dip to zero or a spike stays visible.
"""

from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from django.utils import timezone

from .models import Product, StockMovement

MAX_POINTS = 400
WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28  # margins for the axes' labels


@dataclass(frozen=True)
class StockChart:
    """What the template draws: SVG coordinates and the labels of the axes."""

    line: str  # the stock, a step line: "x,y x,y …"
    threshold_y: float
    y_max: int
    first: datetime
    last: datetime
    movements: int
    points: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


def levels(product: Product) -> tuple[list[tuple[datetime, int]], int]:
    """(time, stock after) of every movement, in ledger order, thinned to MAX_POINTS;
    and how many movements there are."""
    rows = (
        StockMovement.objects.filter(product=product)
        .order_by("id")
        .values_list("created_at", "quantity_after")
    )
    count = rows.count()
    if count <= MAX_POINTS:
        return list(rows), count
    run = -(-count // (MAX_POINTS // 2))  # movements per run, rounded up
    kept: list[tuple[datetime, int]] = []
    chunk: list[tuple[datetime, int]] = []
    for row in rows.iterator(chunk_size=5000):
        chunk.append(row)
        if len(chunk) == run:
            kept.extend(_extremes(chunk))
            chunk = []
    kept.extend(_extremes(chunk))
    if kept[-1] != row:  # the last level is the stock now: always drawn
        kept.append(row)
    return kept, count


def _extremes(chunk: list[tuple[datetime, int]]) -> list[tuple[datetime, int]]:
    if len(chunk) <= 2:
        return chunk
    low = min(chunk, key=lambda row: row[1])
    high = max(chunk, key=lambda row: row[1])
    return sorted({low, high}, key=chunk.index)


def stock_chart(product: Product) -> StockChart | None:
    """The chart of a product's stock up to now, or None before its first movement."""
    points, movements = levels(product)
    if not points:
        return None
    now = timezone.now()
    first, last = points[0][0], max(now, points[-1][0])
    y_max = max(max(level for _, level in points), product.low_stock_threshold, 1)
    span = (last - first).total_seconds() or 1.0

    def x(at: datetime) -> float:
        return LEFT + (at - first).total_seconds() / span * (WIDTH - RIGHT - LEFT)

    def y(level: int) -> float:
        return TOP + (1 - level / y_max) * (HEIGHT - BOTTOM - TOP)

    coordinates = [(x(points[0][0]), y(points[0][1]))]
    for (_, before), (at, level) in pairwise(points):
        coordinates += [(x(at), y(before)), (x(at), y(level))]
    coordinates.append((x(last), y(points[-1][1])))  # the level holds until now
    return StockChart(
        line=" ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coordinates),
        threshold_y=y(product.low_stock_threshold),
        y_max=y_max,
        first=first,
        last=last,
        movements=movements,
        points=len(points),
    )
