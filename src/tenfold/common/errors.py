"""The one exception type the CLI turns into a clean one-line message and exit code 2."""


class UserError(ValueError):
    """Bad input from a user (a parameter, a name, a path); the message names it and the accepted values."""


def check_choice(name: str, value, choices) -> None:
    """Raise `UserError` unless `value` is one of `choices`, naming both."""
    choices = list(choices)
    if value not in choices:
        raise UserError(f"Invalid {name}: {value!r}; expected one of {', '.join(map(str, choices))}")


def check_positive(name: str, value, *, allow_zero: bool = False) -> None:
    """Raise `UserError` unless `value` is > 0 (or >= 0 with `allow_zero`)."""
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise UserError(f"Invalid {name}: {value!r}; expected a number {bound}")
