"""Every state change, one module per entity: experiments, sweeps (and their lifecycle), planning
(runs and samples), recording (results), tokens. Views, the API, admin actions, the CLI and the
runner call these, so each behaviour lives in one place."""


class ServiceError(Exception):
    """A refusal with a message a person can act on."""
