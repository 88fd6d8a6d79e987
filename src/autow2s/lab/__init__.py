"""The lab server: scoring with budgets and an audit log, verified runs, a forum, snapshots.

Everything here is on the trusted side: it holds the labels. See docs/lab.md for the API.
"""
