"""Math reward service: answer extraction, equivalence checking and reward schemes, served over HTTP.

``reward_service.grading`` is the pure grading library (no web imports); ``reward_service.app`` serves it.
"""
__version__ = "0.1.0"
