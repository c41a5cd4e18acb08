"""What an authenticated socket is, and what its link lets it do."""

from __future__ import annotations

from dataclasses import dataclass

from signaling.core.errors import Forbidden
from signaling.core.model import Permission
from signaling.tokens import LinkClaims


@dataclass(frozen=True)
class Session:
    """Whose socket it is, in which room, which connection."""

    room_id: str
    participant_id: str
    connection: int
    claims: LinkClaims

    @property
    def ids(self) -> dict[str, str]:
        """For log lines: ids only."""
        return {"room": self.room_id, "participant": self.participant_id}

    def require(self, permission: Permission) -> None:
        if not self.claims.may(permission):
            raise Forbidden()
