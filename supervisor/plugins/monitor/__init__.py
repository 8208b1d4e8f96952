"""The monitor plugin: samples, series, alerts, /metrics and the dashboard."""
