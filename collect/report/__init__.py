"""Reporting a round: merge the counting returns, the master and supervising-agency workbooks, the summary."""
