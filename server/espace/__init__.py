"""The patients' spaces ("Mon espace santé"): opening by opt-out, jobs, notifications through
the patients' smarthost, and their wiring into ``hygie serve``.
"""
