"""Running the operator: Prometheus metrics and the usage indicators.
"""
