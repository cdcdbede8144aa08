"""A tiny document model rendered twice: Markdown (summary.md) and offline HTML (index.html).

The HTML embeds every PNG as a ``data:`` URI and carries its own CSS, so the
one file opens anywhere without a network; the SVG links are relative.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    title: str
    png: str  # path relative to the report folder
    svg: str
    caption: str


@dataclass
class Document:
    """An ordered list of blocks with a title."""

    title: str
    blocks: list[Heading | Para | Table | Image] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(Heading(level, text))

    def p(self, text: str) -> None:
        self.blocks.append(Para(text))

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(Table(headers, rows))

    def image(self, title: str, png: str, svg: str, caption: str) -> None:
        self.blocks.append(Image(title, png, svg, caption))

    # -- Markdown --------------------------------------------------------------
    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if isinstance(b, Heading):
                out += ["#" * (b.level + 1) + " " + b.text, ""]
            elif isinstance(b, Para):
                out += [b.text, ""]
            elif isinstance(b, Table):
                cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
                out.append("| " + " | ".join(cell(h) for h in b.headers) + " |")
                out.append("|" + "|".join(" --- " for _ in b.headers) + "|")
                out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in b.rows]
                out.append("")
            elif isinstance(b, Image):
                out += [
                    f"**{b.title}**",
                    "",
                    f"![{b.title}]({b.png})",
                    "",
                    f"{b.caption} ([SVG]({b.svg}))",
                    "",
                ]
        return "\n".join(out).rstrip() + "\n"

    # -- HTML ------------------------------------------------------------------
    def html(self, root: Path) -> str:
        """Self-contained HTML; ``root`` is the folder the image paths are relative to."""
        e = html.escape
        body = [f"<h1>{e(self.title)}</h1>"]
        for b in self.blocks:
            if isinstance(b, Heading):
                body.append(f"<h{b.level + 1}>{e(b.text)}</h{b.level + 1}>")
            elif isinstance(b, Para):
                body.append(f"<p>{e(b.text)}</p>")
            elif isinstance(b, Table):
                head = "".join(f"<th>{e(str(h))}</th>" for h in b.headers)
                rows = "".join(
                    "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>"
                    for row in b.rows
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif isinstance(b, Image):
                data = base64.b64encode((root / b.png).read_bytes()).decode("ascii")
                body.append(
                    "<figure>"
                    f'<img alt="{e(b.title, quote=True)}" src="data:image/png;base64,{data}">'
                    f"<figcaption><b>{e(b.title)}</b>. {e(b.caption)} "
                    f'<a href="{e(b.svg, quote=True)}">SVG</a></figcaption></figure>'
                )
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{e(self.title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body)
            + "\n</body></html>\n"
        )


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.8em 0;font-size:.85em;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:left;white-space:nowrap}
th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}
figure{margin:1.2em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#444}
"""
