"""Earning, as pure rules: whether requests to earn fit the budgets (`admission`), and what a
purchase or event earns through a program's rules (`context`, `calculators`, `engine`)."""

from loyalty.domain.earning.admission import EarnItem, EarnRequest, admit

__all__ = ["EarnItem", "EarnRequest", "admit"]
