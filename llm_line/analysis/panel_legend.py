"""The legend beside a figure's panels: the colours of the groups (or y losses), the markers, the line styles,
and every law that is flagged or missing, with its reason.

Its own module: the panels add to it as they are drawn (`llm_line.analysis.panel_drawing`) and the grid
draws it once beside them (`llm_line.analysis.panels`); no note sits on a panel.
"""

from __future__ import annotations

import textwrap

from llm_line.analysis import colours as palette
from llm_line.analysis.panel_parts import Law


class Legend:
    """What the figure's legend names: colours, and every law that is flagged or missing, with its reason."""

    def __init__(self) -> None:
        self.colours: dict[str, tuple] = {}
        self.notes: list[tuple[str, tuple, str]] = []  # (text, colour, linestyle)
        self.has_mean = False
        self.has_flagged = False

    def note(self, law: Law, colour: tuple, name: str, single_panel: bool) -> None:
        f = law.fit
        where = "" if single_panel or not law.panel else f" in {law.panel}"
        if f.status == "flagged":
            self.has_flagged = True
            text = f"{name}: flagged law{where}: {'; '.join(f.warnings)}"
            self.notes.append((text, colour, "--"))
        elif not f.fitted:
            self.notes.append((f"{name}: no law{where}: {f.reason}", colour, "none"))

    def draw(self, fig, group_col, marker, markers, scale, single_panel: bool) -> None:
        from matplotlib.lines import Line2D

        def header(text: str) -> Line2D:
            return Line2D([], [], lw=0, label=text)

        entries: list[Line2D] = []
        if self.colours:
            entries.append(header(group_col or "y loss"))
            entries += [Line2D([], [], color=c, marker="o", lw=1.8, ms=6, label=n) for n, c in self.colours.items()]
        if self.has_mean:
            entries.append(Line2D([], [], color=palette.MEAN, marker="o", lw=1.8, ms=6, label="mean of the y losses"))
        if markers:
            entries += [header(""), header(marker)]
            entries += [Line2D([], [], color="0.3", marker=markers[k], lw=0, ms=6, label=k) for k in markers]
        entries += [header(""), Line2D([], [], color="0.3", lw=1.8, label="fitted law")]
        if self.has_flagged:
            entries.append(Line2D([], [], color="0.3", lw=1.8, ls="--", label="flagged law (reason below)"))
        entries += [
            Line2D([], [], color="0.3", lw=1.2, ls=":", label="extrapolated"),
            Line2D([], [], color="0.75", lw=1, label="y = x"),
        ]
        if self.notes:
            entries.append(header(""))
            entries.append(header("flagged or missing laws"))
            for text, colour, style in self.notes:
                wrapped = textwrap.fill(text, 58, subsequent_indent="   ")
                if style == "none":
                    entries.append(Line2D([], [], color=colour, marker="x", lw=0, ms=6, label=wrapped))
                else:
                    entries.append(Line2D([], [], color=colour, lw=1.8, ls=style, label=wrapped))
        widest = max(len(line) for entry in entries for line in str(entry.get_label()).splitlines())
        fig.set_figwidth(fig.get_figwidth() + 0.6 + 0.062 * widest)  # room for the legend beside the panels
        legend = fig.legend(handles=entries, loc="outside right upper", frameon=False, fontsize=8, handlelength=2.2)
        for text, entry in zip(legend.get_texts(), entries, strict=False):
            if entry.get_linewidth() == 0 and entry.get_marker() in ("None", None, ""):
                text.set_fontweight("bold")
