"""E-mail addresses as account keys: one spelling per mailbox, no look-alikes.

`normalize_email` is the only way an address enters the database or a login
lookup: NFKC-normalised (fullwidth A, U+FF21, is A), validated by `email-validator`
(syntax, length, and unsafe characters such as zero-width spaces refused),
case-folded (a dotted capital I, U+0130, does not become i; it is refused below), and refused when a
part mixes scripts (a Cyrillic i, U+0456, inside a Latin name) as
`confusable-homoglyphs` sees it. Two addresses that a person cannot tell apart
are one account or none.

`.local` domains are allowed (internal directories use them, and so does the
demo admin); the other special-use names (`localhost`, `invalid`, ...) are not.
"""

from __future__ import annotations

import unicodedata

import email_validator
from confusable_homoglyphs import confusables
from email_validator import EmailNotValidError, validate_email

# the library reads this list at each call; the documented way to allow a name
email_validator.SPECIAL_USE_DOMAIN_NAMES = [
    d for d in email_validator.SPECIAL_USE_DOMAIN_NAMES if d != "local"
]


class BadEmail(ValueError):
    """Not an address permgraph accepts; the message says why."""


def normalize_email(value: str) -> str:
    """The canonical form of `value`, or BadEmail."""
    if len(value) > 254:
        raise BadEmail("An e-mail address has at most 254 characters.")
    text = unicodedata.normalize("NFKC", value).strip()
    try:
        address = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise BadEmail(str(exc)) from None
    local = unicodedata.normalize("NFKC", address.local_part.casefold())
    domain = address.domain.casefold()
    for part in (local, domain):
        if confusables.is_mixed_script(part):
            raise BadEmail("The address mixes scripts (look-alike characters).")
    return f"{local}@{domain}"


__all__ = ["BadEmail", "normalize_email"]
