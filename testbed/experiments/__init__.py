"""Scenarios (handover latency, security), metrics from event logs, results, plots, reports."""
