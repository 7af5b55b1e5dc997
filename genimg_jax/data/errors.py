"""The single exception type of the data package.

A bad dataset spec, a dataset that is not prepared or a corrupt image file is a user error, not a bug:
callers (the trainer, `main.py`) catch `DataError` and print its one-line message instead of a traceback.
It subclasses `ValueError` so generic argument checks elsewhere still treat it as a bad value.
"""


class DataError(ValueError):
    """A data source or pipeline cannot be built or read; the message says what and where."""
