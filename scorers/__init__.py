"""Your own scorers: functions a spec names as `{type: python, function: "scorers.<module>:<name>"}`.

This folder is on the path of `make run`, `manage.py` and the workers, and allowed by the
default PROMPTLOOPER_SCORER_MODULES. README, "Your own scorers", shows how to write one.
"""
