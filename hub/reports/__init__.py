"""The automatic case report: one case audit-ready, as HTML and as PDF (docs/case-report.md)."""
