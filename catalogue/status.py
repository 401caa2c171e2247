"""The statuses of apps and versions, and the decisions an operator takes (a module of its
own, light to import, for the command line)."""

from __future__ import annotations

from typing import Final

SUBMITTED: Final = "submitted"
UNDER_REVIEW: Final = "under_review"
REFERENCED: Final = "referenced"
REFUSED: Final = "refused"
SUSPENDED: Final = "suspended"
WITHDRAWN: Final = "withdrawn"
SUPERSEDED: Final = "superseded"  # a version replaced by a later one
DECISIONS: Final = (REFERENCED, REFUSED, SUSPENDED, WITHDRAWN)
STATUSES: Final = (SUBMITTED, UNDER_REVIEW, REFERENCED, REFUSED, SUSPENDED, WITHDRAWN)
PENDING_VERSION: Final = (SUBMITTED, UNDER_REVIEW)
