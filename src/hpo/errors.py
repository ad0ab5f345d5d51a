"""Exception hierarchy. Every error a user can fix is an HPOError whose message names
the key or column at fault and says how to fix it."""


class HPOError(Exception):
    """Root of every error hpo raises on purpose."""


class ConfigError(HPOError):
    """A config key is missing, unknown, or of the wrong type or value."""


class SearchSpaceError(HPOError):
    """A search-space expression is malformed or describes an empty range."""


class DataError(HPOError):
    """A data file, column or target cannot be used as given."""


class ResourceError(HPOError):
    """A resource request that the Ray cluster can never satisfy."""


class TrialError(HPOError):
    """A trial failed in a way worth recording (divergence, bad model output)."""
