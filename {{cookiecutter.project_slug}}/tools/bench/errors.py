class BenchmarkError(Exception):
    """The benchmark cannot run or cannot finish; the message says why and what to do."""
