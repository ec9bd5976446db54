"""Daily uses as an inline SVG bar chart, drawn on the server: no script, no library.

The chart is an image with a title and a description for screen readers; the same
figures are also given as a table (in the page), so nothing is only in the picture.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from markupsafe import Markup, escape

__all__ = ["DailyUses", "daily_uses"]

_WIDTH, _HEIGHT, _LEFT, _BOTTOM, _TOP = 720, 200, 44, 24, 12


@dataclass(frozen=True, slots=True)
class DailyUses:
    """Uses per day over a window ending today, oldest first."""

    days: list[tuple[date, int]]

    @property
    def total(self) -> int:
        """Uses over the whole window."""
        return sum(count for _, count in self.days)

    @property
    def busiest(self) -> tuple[date, int] | None:
        """The day with the most uses, or None when there were none."""
        best = max(self.days, key=lambda item: item[1], default=None)
        return best if best and best[1] else None

    def svg(self, chart_id: str) -> Markup:
        """The chart as an ``<svg>`` element, labelled for assistive technology."""
        peak = max((count for _, count in self.days), default=0) or 1
        plot_w, plot_h = _WIDTH - _LEFT - 8, _HEIGHT - _BOTTOM - _TOP
        slot = plot_w / max(len(self.days), 1)
        parts = [
            f'<svg class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" '
            f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
            'preserveAspectRatio="none" focusable="false">',
            f'<title id="{chart_id}-title">Daily uses, last {len(self.days)} days</title>',
            f'<desc id="{chart_id}-desc">{escape(self.summary())}</desc>',
            f'<line class="axis" x1="{_LEFT}" y1="{_TOP + plot_h}" '
            f'x2="{_WIDTH - 8}" y2="{_TOP + plot_h}"/>',
            f'<text class="label" x="{_LEFT - 6}" y="{_TOP + 4}" text-anchor="end">{peak}</text>',
            f'<text class="label" x="{_LEFT - 6}" y="{_TOP + plot_h}" text-anchor="end">0</text>',
        ]
        for index, (day, count) in enumerate(self.days):
            height = round(plot_h * count / peak, 1)
            x = round(_LEFT + index * slot + slot * 0.15, 1)
            parts.append(
                f'<rect class="bar" x="{x}" y="{round(_TOP + plot_h - height, 1)}" '
                f'width="{round(slot * 0.7, 1)}" height="{height}">'
                f"<title>{day.isoformat()}: {count}</title></rect>"
            )
        for index in (0, len(self.days) - 1):
            day = self.days[index][0]
            anchor = "start" if index == 0 else "end"
            x = _LEFT if index == 0 else _WIDTH - 8
            parts.append(
                f'<text class="label" x="{x}" y="{_HEIGHT - 6}" text-anchor="{anchor}">'
                f"{day.isoformat()}</text>"
            )
        parts.append("</svg>")
        return Markup("".join(parts))  # noqa: S704 - numbers and ISO dates, and escaped text

    def summary(self) -> str:
        """One sentence: the total and the busiest day."""
        busiest = self.busiest
        if busiest is None:
            return f"No uses in the last {len(self.days)} days."
        return (
            f"{self.total} uses in the last {len(self.days)} days; "
            f"busiest day {busiest[0].isoformat()} with {busiest[1]}."
        )


def daily_uses(counts: Mapping[str, str], days: int, today: date) -> DailyUses:
    """The window of ``days`` ending ``today`` from a ``:daily`` hash (day -> count)."""
    window = [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    result: list[tuple[date, int]] = []
    for day in window:
        try:
            count = int(counts.get(day.isoformat(), 0))
        except ValueError:
            count = 0
        result.append((day, max(count, 0)))
    return DailyUses(result)
