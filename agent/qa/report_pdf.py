"""The PDF canvas of the QA report: A4 pages, fonts, header, footer, tables.

:class:`ReportPDF` knows layout only; what goes on the pages is
:mod:`agent.qa.report`'s job and every phrase comes from
:mod:`agent.qa.presentation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import FontFace

#: Page geometry (A4, millimetres).
PAGE_MARGIN = 15.0
CONTENT_WIDTH = 210.0 - 2 * PAGE_MARGIN
BOTTOM_MARGIN = 18.0
#: Size of a control chart on the page (the PNG is 9 x 3.6 inches).
CHART_WIDTH = CONTENT_WIDTH
CHART_HEIGHT = CHART_WIDTH * 3.6 / 9.0
CHART_DPI = 150
#: Space a series section needs before its tables (heading, verdict, chart,
#: numbers); a section starts on a new page when less is left.
SECTION_MIN_HEIGHT = 14.0 + CHART_HEIGHT + 52.0

STATUS_FILL = {
    "action": (244, 199, 195),
    "watch": (255, 229, 153),
    "ok": (204, 235, 197),
}
HEADING_FILL = (228, 234, 242)

class ReportPDF(FPDF):
    """An A4 fpdf2 document with the report's fonts, header, footer and tables.

    Parameters
    ----------
    header_text : str
        Shown at the top of every page but the first.
    footer_text : str
        Shown at the bottom left of every page, beside "page N of M".
    """

    def __init__(self, header_text: str, footer_text: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.header_text = header_text
        self.footer_text = footer_text
        self.set_margins(PAGE_MARGIN, PAGE_MARGIN, PAGE_MARGIN)
        self.set_auto_page_break(True, margin=BOTTOM_MARGIN)
        self.family_name = _register_fonts(self)

    def header(self) -> None:
        """Machine and period on every page after the first."""
        if self.page_no() == 1:
            return
        self.font(8)
        self.set_text_color(110, 110, 110)
        self.cell(0, 5, self.header_text, new_x="LMARGIN", new_y="NEXT")
        self.set_draw_color(180, 180, 180)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.set_text_color(0, 0, 0)
        self.ln(3)

    def footer(self) -> None:
        """Software, date of the report and "page N of M"."""
        self.set_y(-12)
        self.font(8)
        self.set_text_color(110, 110, 110)
        self.cell(CONTENT_WIDTH / 2, 5, self.footer_text)
        self.cell(CONTENT_WIDTH / 2, 5, f"page {self.page_no()} of {{nb}}",
                  align="R")
        self.set_text_color(0, 0, 0)

    def font(self, size: float, style: str = "") -> None:
        """Set the report's font family in a size and style."""
        self.set_font(self.family_name, style, size)

    def paragraph(self, text: str, height: float) -> None:
        """Left-aligned wrapped text across the page (``height``: line height)."""
        self.multi_cell(0, height, text, align="L", new_x="LMARGIN", new_y="NEXT")

    def heading(self, text: str) -> None:
        """A section heading."""
        self.font(13, "B")
        self.cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def subheading(self, text: str) -> None:
        """A heading within a section."""
        self.font(10.5, "B")
        self.cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")

    @staticmethod
    def heading_face() -> FontFace:
        """Style of table headings."""
        return FontFace(emphasis="BOLD", fill_color=HEADING_FILL)

    @staticmethod
    def status_face(status: str) -> FontFace:
        """Style of a status cell: bold on the status colour."""
        return FontFace(emphasis="BOLD", fill_color=STATUS_FILL[status])

    def keep_space(self, needed: float) -> None:
        """A new page unless ``needed`` millimetres are left on this one."""
        if self.get_y() + needed > self.h - BOTTOM_MARGIN:
            self.add_page()

    def key_value_table(self, rows: Sequence[tuple[str, str]]) -> None:
        """Label/value rows across the page."""
        self.font(9.5)
        bold = FontFace(emphasis="BOLD")
        with self.table(col_widths=(40, CONTENT_WIDTH - 40), width=CONTENT_WIDTH,
                        text_align="LEFT", first_row_as_headings=False,
                        line_height=5, padding=(1, 1.5),
                        borders_layout="HORIZONTAL_LINES") as table:
            for key, value in rows:
                row = table.row()
                row.cell(key, style=bold)
                row.cell(value)

    def numbers_table(self, rows: Sequence[tuple[str, str]]) -> None:
        """Label/value pairs in two columns of pairs."""
        self.font(8.5)
        bold = FontFace(emphasis="BOLD")
        half = (len(rows) + 1) // 2
        left, right = rows[:half], rows[half:]
        with self.table(col_widths=(30, 60, 30, 60), width=CONTENT_WIDTH,
                        text_align="LEFT", first_row_as_headings=False,
                        line_height=4.3, padding=(0.7, 1.2),
                        borders_layout="HORIZONTAL_LINES") as table:
            for i, (key, value) in enumerate(left):
                row = table.row()
                row.cell(key, style=bold)
                row.cell(value)
                other = right[i] if i < len(right) else ("", "")
                row.cell(other[0], style=bold)
                row.cell(other[1])


def _register_fonts(pdf: FPDF) -> str:
    """DejaVu Sans from matplotlib's fonts (Unicode), else the core Helvetica."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    faces = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf",
             "I": "DejaVuSans-Oblique.ttf", "BI": "DejaVuSans-BoldOblique.ttf"}
    if all((folder / name).is_file() for name in faces.values()):
        for style, name in faces.items():
            pdf.add_font("DejaVu", style, str(folder / name))
        return "DejaVu"
    return "helvetica"


__all__ = ['ReportPDF']
