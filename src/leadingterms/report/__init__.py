"""The HTML report of a training run (``leadingterms report``).

- :func:`build_report` (:class:`ReportConfig`) -> RUN/report.html, self-contained.
- :mod:`.compare`: learned vs predicted associations, planted-association recovery.
- :mod:`.html`: the page building blocks (inline CSS, base64 images).
"""

from leadingterms.report.build import REPORT_FILE, ReportConfig, build_report, compare_step

__all__ = ["REPORT_FILE", "ReportConfig", "build_report", "compare_step"]
