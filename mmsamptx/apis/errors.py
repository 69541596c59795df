"""The one exception type of user mistakes that the API and the tools report as one line."""


class InputError(ValueError):
    """A user error (a file, a name, a prompt): the tools print ``error: <message>`` and exit 2.

    The message is one line and names the file, key or value at fault.
    """

    def __init__(self, message: str) -> None:
        super().__init__(' '.join(str(message).split()))
