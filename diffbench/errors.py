"""The one exception type users see: a single line naming the field or file and what is allowed."""


class DiffbenchError(Exception):
    """Bad input (params, files, names). Its message is one line, meant to be shown as is."""


class ParamsError(DiffbenchError):
    """A params.yaml field holds a value that is not allowed."""


class DataError(DiffbenchError):
    """A dataset file is missing, unreadable or fails its checksum."""
