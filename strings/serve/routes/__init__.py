"""One router per task: reading strings, single digits, health and metrics, the page."""
