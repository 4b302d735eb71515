class ApplicationError(Exception):
    """A request that is well-formed but cannot be done now; the message is for people.

    ``status`` is the HTTP status the interfaces answer with (400 unless a
    more precise one applies, e.g. 402 for missing credit, 409 for a state
    conflict, 410 for an expired link).
    """

    def __init__(
        self, message: str, *, status: int = 400, code: str = "invalid"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
