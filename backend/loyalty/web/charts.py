"""Charts as standalone SVG (no library, no network), for the CLI and the web UI: a program's
cohorts of points (each earned epoch's bar split into what was spent, expired and is still
outstanding), and its liability and breakage over time."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

PARTS = (("spent", "#2da44e", "spent"), ("expired", "#d1242f", "expired (breakage)"),
         ("outstanding", "#1f6feb", "outstanding"))  # fmt: skip


LINES = (
    ("outstanding_points", "#1f6feb", "outstanding (liability)"),
    ("expired_points", "#d1242f", "expired (breakage)"),
)


def cohorts_chart(metrics: dict[str, Any], width: int = 860, height: int = 340) -> str:
    """Stacked bars by cohort (dates on the axis); a dashed outline on an open cohort marks the
    points expected to expire (`expected_expired`)."""
    cohorts = metrics["breakage"]["cohorts"]
    pad, top_pad = 64, 70
    top = max((c["earned"] for c in cohorts), default=0) or 1
    slot = (width - 2 * pad) / max(1, len(cohorts))
    bar = max(4.0, slot * 0.6)

    def y(points: int) -> float:
        return float(height - pad - points / top * (height - pad - top_pad))

    shapes = []
    for i, c in enumerate(cohorts):
        x, base = pad + i * slot + (slot - bar) / 2, 0
        for key, colour, _ in PARTS:
            if c[key]:
                shapes.append(
                    f'<rect x="{x:.1f}" y="{y(base + c[key]):.1f}" width="{bar:.1f}" '
                    f'height="{y(base) - y(base + c[key]):.1f}" fill="{colour}"><title>{key} {c[key]:,}</title></rect>'
                )
            base += c[key]
        if not c["closed"] and c["expected_expired"] > c["expired"]:
            guess = c["expected_expired"] - c["expired"]
            shapes.append(
                f'<rect x="{x:.1f}" y="{y(c["earned"]):.1f}" width="{bar:.1f}" height="{y(0) - y(guess):.1f}" '
                f'fill="none" stroke="#d1242f" stroke-dasharray="4 3" stroke-width="1.5">'
                f"<title>expected to expire {guess:,}</title></rect>"
            )
        label = str(c["starts_at"])[:10]
        shapes.append(
            f'<text x="{x + bar / 2:.1f}" y="{height - pad + 16}" font-size="11" text-anchor="middle">{label}</text>'
        )
    realized, expected = metrics["breakage"]["realized_bp"], metrics["breakage"]["expected_bp"]

    def percent(bp: int | None) -> str:
        return "n/a" if bp is None else f"{bp / 100:.2f} %"

    title = (
        f"Program {metrics['program_id']}: liability {metrics['liability_points']:,} points; "
        f"breakage realized {percent(realized)}, expected {percent(expected)}"
    )
    legend = "".join(
        f'<rect x="{pad + i * 180}" y="34" width="12" height="12" fill="{colour}"/>'
        f'<text x="{pad + i * 180 + 18}" y="44" font-size="12">{escape(name)}</text>'
        for i, (_, colour, name) in enumerate(PARTS)
    ) + (
        f'<rect x="{pad + 3 * 180}" y="34" width="12" height="12" fill="none" stroke="#d1242f" stroke-dasharray="4 3"/>'
        f'<text x="{pad + 3 * 180 + 18}" y="44" font-size="12">expected to expire</text>'
    )
    caption = (
        f'<text x="{width / 2}" y="{height - 18}" font-size="12" text-anchor="middle">'
        "cohort: the day its points were earned</text>"
    )
    return _framed(width, height, pad, top_pad, top, title, legend + caption + "".join(shapes))


def timeline_chart(timeline: dict[str, Any], width: int = 860, height: int = 320) -> str:
    """Outstanding (liability) and expired (breakage) points over time: two lines, dates on the
    axis (each sample at its block's time)."""
    points = timeline["points"]
    pad, top_pad = 64, 60
    if not points:
        return '<p class="muted">No events yet.</p>'
    times = [datetime.fromisoformat(p["at"]).timestamp() for p in points]
    top = max(max(p["outstanding_points"], p["expired_points"]) for p in points) or 1
    low, span = times[0], max(1.0, times[-1] - times[0])

    def x(at: float) -> float:
        return pad + (at - low) / span * (width - 2 * pad)

    def y(value: int) -> float:
        return float(height - pad - value / top * (height - pad - top_pad))

    lines = []
    for key, colour, _ in LINES:
        path = " ".join(f"{x(t):.1f},{y(p[key]):.1f}" for t, p in zip(times, points, strict=True))
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
    ticks = []
    for i in range(5):  # five dates along the axis
        at = low + span * i / 4
        label = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")
        ticks.append(
            f'<text x="{x(at):.1f}" y="{height - pad + 16}" font-size="11" text-anchor="middle">{label}</text>'
        )
    last = points[-1]
    title = (
        f"Program {timeline['program_id']}: liability {last['outstanding_points']:,} points, "
        f"breakage {last['expired_points']:,} points"
    )
    legend = "".join(
        f'<rect x="{pad + i * 200}" y="30" width="12" height="12" fill="{colour}"/>'
        f'<text x="{pad + i * 200 + 18}" y="40" font-size="12">{escape(name)}</text>'
        for i, (_, colour, name) in enumerate(LINES)
    )
    return _framed(width, height, pad, top_pad, top, title, legend + "".join(ticks) + "".join(lines))


def _framed(width: int, height: int, pad: int, top_pad: int, top: int, title: str, body: str) -> str:
    """A chart's SVG: a white page, the axes (0 and `top` marked on the left), the title, `body`."""
    axes = (
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>'
        f'<line x1="{pad}" y1="{top_pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>'
        f'<text x="{pad - 6}" y="{top_pad + 4}" font-size="11" text-anchor="end">{top:,}</text>'
        f'<text x="{pad - 6}" y="{height - pad}" font-size="11" text-anchor="end">0</text>'
        f'<text x="{pad}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>'
        f"{axes}{body}</svg>\n"
    )
