"""Campaigns: the lab, the researchers, the executor and the budgets, with resume after a crash."""
