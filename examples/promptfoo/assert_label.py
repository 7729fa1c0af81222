# A promptfoo python assertion: get_assert(output, context) returns a bool, a score or a GradingResult.
def get_assert(output, context):
    ticket = context["vars"]["ticket"]
    echoed = ticket.split()[0].lower() in output.lower()
    return {"pass": echoed, "score": 1.0 if echoed else 0.0, "reason": f"mentions {ticket.split()[0]!r}: {echoed}"}
