"""A tiny PNG line chart written with zlib and struct only (the layer ships no plotting library).

An RGB raster canvas with lines (solid or dashed), filled rectangles and a 5x7 bitmap font
(upper case, digits and a little punctuation: text is drawn upper-cased), and ``line_chart`` that
lays out stacked panels sharing one x axis, with y ticks, grid lines and a legend.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

Color = tuple[int, int, int]

WHITE: Color = (255, 255, 255)
BLACK: Color = (0, 0, 0)
TEXT: Color = (51, 51, 51)
GRID: Color = (225, 225, 225)

# 5x7 glyphs: seven rows, top first, each row five bits (the leftmost pixel is 0x10), as hex pairs.
FONT: dict[str, str] = {
    " ": "00000000000000", "0": "0E11131519110E", "1": "040C040404040E", "2": "0E11010204081F",
    "3": "1F02040201110E", "4": "02060A121F0202", "5": "1F101E0101110E", "6": "0608101E11110E",
    "7": "1F010204080808", "8": "0E11110E11110E", "9": "0E11110F01020C", "A": "0E1111111F1111",
    "B": "1E11111E11111E", "C": "0E11101010110E", "D": "1C12111111121C", "E": "1F10101E10101F",
    "F": "1F10101E101010", "G": "0E11101711110F", "H": "1111111F111111",
    "I": "0E04040404040E", "J": "0702020202120C", "K": "11121418141211", "L": "1010101010101F",
    "M": "111B1515111111", "N": "11111915131111", "O": "0E11111111110E", "P": "1E11111E101010",
    "Q": "0E11111115120D", "R": "1E11111E141211", "S": "0F10100E01011E", "T": "1F040404040404",
    "U": "1111111111110E", "V": "11111111110A04", "W": "1111111515150A",
    "X": "11110A040A1111", "Y": "1111110A040404", "Z": "1F01020408101F", "-": "0000001F000000",
    ".": "00000000000C0C", ",": "000000000C0408", "%": "18190204081303", "/": "00010204081000",
    ":": "000C0C000C0C00", "(": "02040808080402", ")": "08040202020408", "+": "0004041F040400",
    "_": "0000000000001F", "=": "00001F001F0000", "'": "0C040800000000", "?": "0E110102040004",
    "#": "0A0A1F0A1F0A0A", "&": "0C12140815120D", "*": "00040E1F0E0400", "!": "04040404040004",
}  # fmt: skip
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GLYPH_WIDTH, GLYPH_HEIGHT, GLYPH_ADVANCE = 5, 7, 6


def glyph(char: str) -> list[int]:
    """The seven row bitmasks of a character (unknown characters draw as '?')."""
    code = FONT.get(char.upper(), FONT["?"])
    return [int(code[i : i + 2], 16) for i in range(0, 14, 2)]


def text_width(text: str, scale: int = 1) -> int:
    return max(0, len(text) * GLYPH_ADVANCE * scale - scale)


class Canvas:
    """An RGB raster, white to begin with; coordinates are pixels from the top left."""

    def __init__(self, width: int, height: int, background: Color = WHITE) -> None:
        if width < 1 or height < 1:
            raise ValueError("a canvas needs at least one pixel")
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def dot(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            at = 3 * (y * self.width + x)
            self.pixels[at : at + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        """Fill the rectangle with corners (x0, y0) and (x1, y1), both included."""
        x0, x1 = max(0, min(x0, x1)), min(self.width - 1, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.height - 1, max(y0, y1))
        if x0 > x1 or y0 > y1:
            return
        row = bytes(color) * (x1 - x0 + 1)
        for y in range(y0, y1 + 1):
            at = 3 * (y * self.width + x0)
            self.pixels[at : at + len(row)] = row

    def line(
        self, x0: int, y0: int, x1: int, y1: int, color: Color, width: int = 1, dash: tuple[int, int] | None = None
    ) -> None:
        """Bresenham's line with a square brush of ``width``; ``dash`` = (pixels on, pixels off)."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err, step = dx + dy, 0
        lo = -(width // 2)
        while True:
            if dash is None or step % (dash[0] + dash[1]) < dash[0]:
                self.rect(x0 + lo, y0 + lo, x0 + lo + width - 1, y0 + lo + width - 1, color)
            if x0 == x1 and y0 == y1:
                return
            twice = 2 * err
            if twice >= dy:
                err += dy
                x0 += sx
            if twice <= dx:
                err += dx
                y0 += sy
            step += 1

    def text(self, x: int, y: int, text: str, color: Color = TEXT, scale: int = 1) -> None:
        """Draw ``text`` with its top left corner at (x, y)."""
        for char in text:
            for row, bits in enumerate(glyph(char)):
                for col in range(GLYPH_WIDTH):
                    if bits & (0x10 >> col):
                        px, py = x + col * scale, y + row * scale
                        self.rect(px, py, px + scale - 1, py + scale - 1, color)
            x += GLYPH_ADVANCE * scale

    def png(self) -> bytes:
        """The canvas as a PNG file: 8-bit RGB, no interlace, filter 0 on every row."""
        stride = 3 * self.width
        raw = b"".join(b"\x00" + self.pixels[y * stride : (y + 1) * stride] for y in range(self.height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
        )


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    color: Color
    dashed: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    series: Sequence[Series] = field(default_factory=tuple)


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top``: steps of 1, 2 or 5 times a power of ten."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < top - 1e-9 * step:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def compact(value: float) -> str:
    """1234567 -> '1.23M'; tick labels stay short."""
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}" if value != int(value) else str(int(value))


def line_chart(
    title: str,
    x_labels: Sequence[str],
    panels: Sequence[Panel],
    legend: Sequence[tuple[str, Color, bool]] = (),
    width: int = 1000,
    panel_height: int = 260,
) -> bytes:
    """Stacked panels of lines over the same x positions (one per label), as PNG bytes.

    An x label may hold a second line after a newline (a year under a month, say). Labels that
    would collide are thinned out to every k-th. ``legend`` entries are (text, color, dashed).
    """
    scale, line_height = 2, 9 * 2
    left, right, top = 110, 40, 16
    legend_rows = _legend_rows(legend, width - left - right, scale)
    y = top + 3 * 9 + 12 + len(legend_rows) * (line_height + 8) + 8
    label_lines = max((label.count("\n") + 1 for label in x_labels), default=1)
    panel_block = panel_height + 14 + label_lines * line_height + 24 + line_height + 8
    height = y + len(panels) * panel_block
    canvas = Canvas(width, height)
    canvas.text(left, top, title, TEXT, 3)
    legend_y = top + 3 * 9 + 12
    for row in legend_rows:
        x = left
        for text, color, dashed in row:
            canvas.line(x, legend_y + 6, x + 36, legend_y + 6, color, 3, (8, 5) if dashed else None)
            canvas.text(x + 46, legend_y, text, TEXT, scale)
            x += 46 + text_width(text, scale) + 30
        legend_y += line_height + 8
    count = len(x_labels)
    plot_left, plot_right = left, width - right
    xs = [plot_left + (plot_right - plot_left) // 2] if count == 1 else [
        plot_left + round(i * (plot_right - plot_left) / (count - 1)) for i in range(count)
    ]  # fmt: skip
    widest = max((text_width(part, scale) for label in x_labels for part in label.split("\n")), default=0)
    every = 1
    while count > 1 and every < count and (xs[min(every, count - 1)] - xs[0]) < widest + 12:
        every += 1
    for panel in panels:
        canvas.text(left, y, panel.title, TEXT, scale)
        plot_top, plot_bottom = y + line_height + 8, y + line_height + 8 + panel_height
        peak = max((v for s in panel.series for v in s.values), default=0.0)
        ticks = nice_ticks(peak)
        span = ticks[-1] or 1.0

        def to_y(value: float, plot_top: int = plot_top, plot_bottom: int = plot_bottom, span: float = span) -> int:
            return round(plot_bottom - (value / span) * (plot_bottom - plot_top))

        for tick in ticks:
            ty = to_y(tick)
            canvas.line(plot_left, ty, plot_right, ty, GRID)
            label = compact(tick)
            canvas.text(plot_left - 10 - text_width(label, scale), ty - 7, label, TEXT, scale)
            canvas.line(plot_left - 6, ty, plot_left - 1, ty, BLACK)
        canvas.line(plot_left, plot_top, plot_left, plot_bottom, BLACK, 2)
        canvas.line(plot_left, plot_bottom, plot_right, plot_bottom, BLACK, 2)
        for i, x in enumerate(xs):
            canvas.line(x, plot_bottom, x, plot_bottom + 6, BLACK)
            if i % every == 0:
                for n, part in enumerate(x_labels[i].split("\n")):
                    canvas.text(x - text_width(part, scale) // 2, plot_bottom + 14 + n * line_height, part, TEXT, scale)
        for series in panel.series:
            points = [(x, to_y(v)) for x, v in zip(xs, series.values, strict=False)]
            dash = (10, 6) if series.dashed else None
            for (xa, ya), (xb, yb) in itertools.pairwise(points):
                canvas.line(xa, ya, xb, yb, series.color, 3, dash)
            for px, py in points:
                canvas.rect(px - 3, py - 3, px + 3, py + 3, series.color)
                if series.dashed:
                    canvas.rect(px - 1, py - 1, px + 1, py + 1, WHITE)
        y += panel_block
    return canvas.png()


def _legend_rows(
    legend: Sequence[tuple[str, Color, bool]], room: int, scale: int
) -> list[list[tuple[str, Color, bool]]]:
    rows: list[list[tuple[str, Color, bool]]] = []
    used = room + 1
    for entry in legend:
        need = 46 + text_width(entry[0], scale) + 30
        if used + need > room:
            rows.append([])
            used = 0
        rows[-1].append(entry)
        used += need
    return rows
