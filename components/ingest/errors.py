"""The one exception the ingest component raises for bad input."""


class IngestError(ValueError):
    """Bad input to ingest: the message names the file, row or column at fault."""
