"""The HTML report of a training run (``leadingterms report``).

- :func:`build_report` (:class:`ReportConfig`) -> :class:`ReportResult` (RUN/report.html, self-contained).
- :mod:`.html`: the page building blocks (inline CSS, base64 images), used by every HTML page.
"""

from leadingterms.report.build import REPORT_FILE, ReportConfig, ReportResult, build_report, compare_step

__all__ = ["REPORT_FILE", "ReportConfig", "ReportResult", "build_report", "compare_step"]
