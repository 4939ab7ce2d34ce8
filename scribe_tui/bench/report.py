"""The bench report: a terminal table, and DIR/report.md with a chart and a link per run.

Everything here is deterministic (rows sorted by run id, no timestamps, PNG without a
software stamp) so a report regenerated from the same results is byte-identical.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from scribe_tui.bench.scoring import (
    CellSummary,
    ReliabilityBin,
    reliability,
    summarise,
    verdict,
)
from scribe_tui.integrity import MAC, verified

RESULTS = "results.jsonl"
REPORT = "report.md"
CHART = "report.png"
# Seeds and repeats are samples of a cell, not cells of their own.
_SAMPLE_AXES = ("seed", "repeat")
_FALLBACK_BY = ("agent", "organism")
_AXIS_WIDTH = 24
HEADERS = (
    "n",
    "fail",
    "no answer",
    "unknown",
    "coverage",
    "accuracy [95% CI]",
    "Brier",
    "FP ctrl",
    "unsealed",
)
LEGEND = (
    "fail: runs whose investigation failed (a crash, every technique failing), left out of "
    "everything else; no answer: runs that ended without concluding (out of budget); "
    "unknown: abstentions; coverage: share of the other runs that answered (named a secret "
    "or said none was planted); accuracy: correct / answered, with its 95% Wilson interval; "
    "Brier: mean squared error of the answers' confidence (lower is better; abstentions "
    "left out); FP ctrl: share of control runs that named a secret; unsealed: runs without "
    "a sealed sandbox."
)
# A note wherever the autopilot meets the methodology axis, so no one reads an effect into it.
METHODOLOGY_NOTE = (
    "note: methodology only changes the prompt Claude gets; the autopilot follows its own "
    "procedure, so its methodology=on and methodology=off runs are the same investigation."
)


def _salvage(line: str) -> dict | None:
    """The whole row at the end of ``line``, if a cut row came before it; else None.

    A bench killed mid-write and then resumed appends its next row onto the cut one.
    """
    start = line.find("{", 1)
    while start != -1:
        try:
            row = json.loads(line[start:])
        except json.JSONDecodeError:
            start = line.find("{", start + 1)
            continue
        return row if isinstance(row, dict) and "run_id" in row else None
    return None


def load_results(directory: Path, rejected: list[str] | None = None) -> list[dict]:
    """The rows of ``directory/results.jsonl`` sorted by run id, the last row per run id winning.

    A row cut short (a bench killed mid-write) is skipped; a missing file is no rows. A row
    whose integrity check fails (not written by scribe-tui as it is) is never used: its run
    id goes to ``rejected``.
    """
    path = Path(directory) / RESULTS
    if not path.is_file():
        return []
    # A kill can also cut a UTF-8 sequence in two; that line then fails to parse below.
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    last = max((number for number, line in enumerate(lines) if line.strip()), default=-1)
    rows: dict[str, dict] = {}
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = _salvage(line)
            if row is None and number == last:
                continue
            if row is None:
                raise ValueError(f"{path}:{number + 1}: not a JSON row") from None
        if not verified(row):
            if rejected is not None:
                rejected.append(str(row.get("run_id", f"line {number + 1}")))
            continue
        rows[row["run_id"]] = {k: v for k, v in row.items() if k != MAC}
    return [rows[run_id] for run_id in sorted(rows)]


def _varying(rows: Sequence[dict]) -> list[str]:
    """Axis names taking more than one value across ``rows``, in first-seen order."""
    values: dict[str, set[str]] = {}
    for row in rows:
        for name in row["axes"]:
            values.setdefault(name, set())
    for row in rows:
        for name, seen in values.items():
            seen.add(json.dumps(row["axes"].get(name), sort_keys=True))
    return [name for name, seen in values.items() if len(seen) > 1]


def default_by(rows: Sequence[dict]) -> list[str]:
    """The axes to group by: those that vary (seed and repeat aside), else agent and organism."""
    return [name for name in _varying(rows) if name not in _SAMPLE_AXES] or list(_FALLBACK_BY)


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _accuracy(cell: CellSummary) -> str:
    if cell.accuracy is None:
        return "-"
    low, high = cell.ci
    return f"{cell.accuracy:.2f} [{low:.2f}–{high:.2f}]"


def _figures(cell: CellSummary) -> list[str]:
    """The cell's columns after its axis values, in :data:`HEADERS` order."""
    return [
        str(cell.n),
        str(cell.failed),
        str(cell.no_answer),
        str(cell.unknown),
        _fraction(cell.coverage),
        _accuracy(cell),
        _fraction(cell.brier),
        _fraction(cell.false_positive_rate),
        str(cell.unsealed),
    ]


def methodology_note(rows: Sequence[dict]) -> str | None:
    """:data:`METHODOLOGY_NOTE` when autopilot runs were given a methodology setting of
    their own (methodology=off, or both); None otherwise."""
    for row in rows:
        axes = row["axes"]
        if axes.get("agent") == "autopilot" and axes.get("methodology") not in (None, "on"):
            return METHODOLOGY_NOTE
    return None


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip(value: Any) -> str:
    return _shorten(str(value), _AXIS_WIDTH)


def format_table(cells: list[CellSummary], axes: Sequence[str]) -> str:
    """A plain-text table of ``cells`` for the terminal: axis columns, then :data:`HEADERS`."""
    body = [[_clip(cell.axes.get(name)) for name in axes] + _figures(cell) for cell in cells]
    return _plain_table([*axes, *HEADERS], body, len(axes))


def format_mechanistic_tables(cells: list[CellSummary], axes: Sequence[str]) -> str:
    """The report's Circuits and Directions tables for the terminal, each under its title;
    empty when no cell has circuit or direction figures."""
    tables = []
    for title, (header, body) in (
        ("Circuits", _circuit_rows(cells, axes, _clip)),
        ("Directions", _direction_rows(cells, axes, _clip)),
    ):
        if body:
            tables.append(f"{title}\n{_plain_table(header, body, len(axes))}")
    return "\n\n".join(tables)


def _plain_table(header: list[str], body: list[list[str]], axes: int) -> str:
    """Columns padded to fit: the first ``axes`` (names) to the left, figures to the right."""
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        parts = [
            text.ljust(width) if i < axes else text.rjust(width)
            for i, (text, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in body)])


def _md(text: Any) -> str:
    """``text`` on one line with markdown's active characters escaped."""
    out = " ".join(str(text).split())
    for char in "\\`*_[]<>|":
        out = out.replace(char, "\\" + char)
    return out


def _markdown_table(cells: list[CellSummary], axes: Sequence[str]) -> list[str]:
    rows = [[_md(cell.axes.get(name)) for name in axes] + _figures(cell) for cell in cells]
    return _markdown_rows([*axes, *HEADERS], rows, len(axes))


CIRCUIT_HEADERS = ("F1", "IoU", "faithfulness")
CIRCUIT_LEGEND = (
    "Mechanistic organisms: the claimed circuit against the measured one, means over the "
    "runs that claimed a circuit (or none). F1 and IoU of the component sets; faithfulness: "
    "the lesser of the share of the behaviour the claim keeps with everything else "
    "mean-ablated and the share lost when the claim is ablated."
)


def _circuit_rows(
    cells: list[CellSummary], axes: Sequence[str], name: Callable[[Any], str]
) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the cells that have circuit figures (axis values through
    ``name``); no rows when none has."""
    rows = [
        [name(cell.axes.get(axis)) for axis in axes]
        + [_fraction(cell.f1), _fraction(cell.iou), _fraction(cell.faithfulness)]
        for cell in cells
        if cell.f1 is not None
    ]
    return [*axes, *CIRCUIT_HEADERS], rows


def _circuit_table(cells: list[CellSummary], axes: Sequence[str]) -> list[str]:
    """The circuit figures of the cells that have any; no lines when none has."""
    header, rows = _circuit_rows(cells, axes, _md)
    if not rows:
        return []
    return ["## Circuits", "", *_markdown_rows(header, rows, len(axes)), "", CIRCUIT_LEGEND, ""]


def _markdown_rows(header: list[str], rows: list[list[str]], axes: int) -> list[str]:
    align = ["---"] * axes + ["---:"] * (len(header) - axes)
    return ["| " + " | ".join(row) + " |" for row in [header, align, *rows]]


DIRECTION_LEGEND = (
    "Direction organisms: the claimed vector against the measured refusal direction, means "
    "over the runs that claimed one. Cosine with the key's direction; effect: the fall in the "
    "gap between refusing the guarded class and the rest when the claim is ablated, over "
    "the fall the key's direction causes."
)


def _direction_rows(
    cells: list[CellSummary], axes: Sequence[str], name: Callable[[Any], str]
) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the cells that have direction figures (axis values through
    ``name``); no rows when none has."""
    rows = [
        [name(cell.axes.get(axis)) for axis in axes]
        + [_fraction(cell.cosine), _fraction(cell.relative_effect)]
        for cell in cells
        if cell.relative_effect is not None
    ]
    return [*axes, "cosine", "effect"], rows


def _direction_table(cells: list[CellSummary], axes: Sequence[str]) -> list[str]:
    """The direction figures of the cells that have any; no lines when none has."""
    header, rows = _direction_rows(cells, axes, _md)
    if not rows:
        return []
    return ["## Directions", "", *_markdown_rows(header, rows, len(axes)), "", DIRECTION_LEGEND, ""]


def _code(text: str) -> str:
    """``text`` as inline code, on one line and shortened."""
    text = _shorten(" ".join(text.split()), 80)
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _outcome(row: dict) -> str:
    kind = verdict(row)
    if kind == "failed":
        error = str(row.get("error") or "").strip()
        return "💥 failed" + (f": {_md(_shorten(error.splitlines()[0], 120))}" if error else "")
    if kind == "wrong" and row.get("false_positive"):
        return "❌ false positive"
    return {
        "correct": "✅ correct",
        "wrong": "❌ wrong",
        "unknown": "➖ abstained (unknown)",
        "no answer": "⏹ no answer",
        "unscored": "not scored",
    }[kind]


def _run_line(row: dict, shown: Sequence[str]) -> str:
    run_id = _md(row["run_id"])
    notebook = row.get("notebook")
    link = f"[{run_id}]({quote(notebook)})" if notebook else f"{run_id} (no notebook)"
    parts = [link]
    if shown:
        parts.append(" ".join(f"{name}={_md(row['axes'].get(name))}" for name in shown))
    answer = row.get("answer")
    parts.append("answer " + (_code(answer) if answer is not None else "none given"))
    confidence = row.get("confidence")
    parts.append(f"confidence {confidence:.2f}" if confidence is not None else "no confidence")
    parts.append(_outcome(row))
    if row.get("f1") is not None:
        parts.append(f"F1 {row['f1']:.2f} · faithfulness {_fraction(row.get('faithfulness'))}")
    if row.get("relative_effect") is not None:
        parts.append(
            f"cosine {row['cosine']:.2f} · ablation effect "
            f"{row['relative_effect']:.2f} of the key's"
        )
    if row.get("exit") not in ("concluded", "failed", None):
        parts.append(f"exit: {_md(row['exit'])}")
    if row.get("sealed") is False:
        sandbox = row.get("sandbox")
        parts.append("⚠️ unsealed" + (f" ({_md(sandbox)})" if sandbox else ""))
    return "- " + " · ".join(parts)


def _label(axes: dict[str, Any]) -> str:
    """A cell's name in the chart: every value with its axis (``methodology=off``)."""
    return " / ".join(f"{name}={_clip(value)}" for name, value in axes.items())


def _chart(cells: list[CellSummary], bins: list[ReliabilityBin], path: Path) -> None:
    """Accuracy when answering per cell (bars, Wilson intervals) beside the reliability diagram."""
    # Imported here so the CLI starts without matplotlib; no pyplot, so no global backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, max(4.5, 1.2 + 0.35 * len(cells))), dpi=100)
    FigureCanvasAgg(figure)
    bars, diagram = figure.subplots(1, 2, width_ratios=[2, 1])
    accuracy = [cell.accuracy or 0.0 for cell in cells]
    errors = [
        [value - cell.ci[0] for value, cell in zip(accuracy, cells, strict=True)],
        [cell.ci[1] - value for value, cell in zip(accuracy, cells, strict=True)],
    ]
    positions = range(len(cells))
    bars.barh(positions, accuracy, xerr=errors, color="#4c72b0", ecolor="#333333", capsize=3)
    labels = [f"{_label(cell.axes)}  ({cell.answered} of {cell.n} answered)" for cell in cells]
    bars.set_yticks(list(positions), labels)
    bars.invert_yaxis()
    bars.set_xlim(0, 1)
    bars.set_xlabel("accuracy when answering (bars: 95% Wilson interval)")
    bars.set_title("accuracy when answering, per grid cell", fontsize=10)

    diagram.plot([0, 1], [0, 1], linestyle="--", color="#999999", label="calibrated")
    if bins:
        diagram.plot(
            [b.mean_confidence for b in bins],
            [b.accuracy for b in bins],
            marker="o",
            color="#c44e52",
            label="answers",
        )
        for number, b in enumerate(bins):
            # Alternately below and above the point, so neighbouring bins' labels stay apart.
            diagram.annotate(
                f"n={b.n}",
                (b.mean_confidence, b.accuracy),
                textcoords="offset points",
                xytext=(-6, -14 if number % 2 == 0 else 8),
                fontsize=8,
            )
    diagram.set_xlim(-0.02, 1.04)  # a little room so points at 0 or 1 show whole
    diagram.set_ylim(-0.02, 1.04)
    diagram.set_aspect("equal")
    diagram.set_xlabel("stated confidence\n(mean of each 0.1 bin)")
    diagram.set_ylabel("observed accuracy")
    diagram.set_title("reliability of answered runs", fontsize=10)
    diagram.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png", metadata={"Software": None}, bbox_inches="tight")


def _reliability_table(bins: list[ReliabilityBin]) -> list[str]:
    if not bins:
        return ["No answered run gave a confidence yet."]
    lines = [
        "| confidence | answers | mean confidence | observed accuracy |",
        "| --- | ---: | ---: | ---: |",
    ]
    for b in bins:
        lines.append(
            f"| {b.low:.1f}–{b.high:.1f} | {b.n} | {b.mean_confidence:.2f} | {b.accuracy:.2f} |"
        )
    return lines


def _cost_table(rows: Sequence[dict], by: Sequence[str]) -> list[str]:
    """Cost and wall time per verdict in each cell: what N investigators cost against one."""
    import statistics

    cells: dict[tuple, list[dict]] = {}
    for row in rows:
        cells.setdefault(tuple(row["axes"].get(name) for name in by), []).append(row)
    lines = [
        "## Cost and time per verdict",
        "",
        "A verdict is one run's answer: with investigators > 1, the aggregate of all of them.",
        "",
        "| " + " | ".join([*by, "verdicts", "mean cost $", "median wall s"]) + " |",
        "| " + " | ".join(["---"] * len(by) + ["---:"] * 3) + " |",
    ]
    for values in sorted(cells, key=lambda key: [str(v) for v in key]):
        group = cells[values]
        costs = [float(r.get("cost_usd") or 0.0) for r in group]
        walls = [float(r["wall_s"]) for r in group if isinstance(r.get("wall_s"), (int, float))]
        wall = f"{statistics.median(walls):.1f}" if walls else "-"
        shown = [_md(value) for value in values]
        shown += [str(len(group)), f"{statistics.mean(costs):.4f}", wall]
        lines.append("| " + " | ".join(shown) + " |")
    return [*lines, ""]


def write_report(directory: Path, by: Sequence[str] | None = None) -> Path:
    """Write ``directory/report.md`` and ``report.png`` from the results; returns report.md.

    ``by`` defaults to :func:`default_by`. With no rows yet the report says so and there
    is no chart.
    """
    directory = Path(directory)
    rejected: list[str] = []
    rows = load_results(directory, rejected)
    report, chart = directory / REPORT, directory / CHART
    if not rows:
        chart.unlink(missing_ok=True)
        report.write_text("# Bench report\n\nNo runs have finished yet.\n", encoding="utf-8")
        return report
    by = list(by) if by is not None else default_by(rows)
    cells = summarise(rows, by)
    bins = reliability(rows)
    _chart(cells, bins, chart)
    counts = Counter(verdict(row) for row in rows)
    answered = counts["correct"] + counts["wrong"]
    note = methodology_note(rows)
    shown = _varying(rows)
    lines = [
        "# Bench report",
        "",
        f"Runs: {len(rows)} done; {answered} answered, {counts['unknown']} unknown, "
        f"{counts['no answer']} without an answer, {counts['failed']} failed.",
        "",
        *(
            [
                f"Left out: {len(rejected)} rows that fail their integrity check (not written by "
                f"scribe-tui as they are): {', '.join(rejected)}.",
                "",
            ]
            if rejected
            else []
        ),
        f"## Results by {' × '.join(_md(name) for name in by)}",
        "",
        *_markdown_table(cells, by),
        "",
        LEGEND,
        *(["", _md(note)] if note else []),
        "",
        f"![accuracy and reliability]({CHART})",
        "",
        *_circuit_table(cells, by),
        *_direction_table(cells, by),
        "## Reliability",
        "",
        "Answered runs binned by their stated confidence: a calibrated agent's answers "
        "are right as often as it says.",
        "",
        *_reliability_table(bins),
        "",
        *_cost_table(rows, by),
        "## Runs",
        "",
        *(_run_line(row, shown) for row in rows),
    ]
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report
