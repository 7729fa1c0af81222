"""`{% load numbers %}`: the filters of sweeps.engine.formatting, so pages format numbers as the API and CLI do."""

from django import template

from sweeps.engine import formatting

register = template.Library()
register.filter("count", formatting.count)
register.filter("param", formatting.param)
register.filter("per_call", formatting.per_call)
register.filter("run_status", formatting.run_status)
