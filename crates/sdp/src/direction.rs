//! Media direction (RFC 8866 §6.7, RFC 3264 §5.1 and §6.1) and hold (RFC 6337 §5).
//!
//! A direction is written from the describing side's point of view: `a=sendonly` in the
//! peer's offer means the peer sends and does not want to receive. An answer mirrors it
//! ([`Direction::reversed`]). To put a call on hold the holding side offers `sendonly` (or
//! `inactive` if it was not receiving either) — [`Direction::held`] — and takes the hold back
//! with the direction it had before — [`Direction::resumed`].

use std::fmt;

/// Who sends in a media stream, as written by the side that describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv`: both ways. RFC 3264 §5.1: the default when nothing is written.
    #[default]
    SendRecv,
    /// `a=sendonly`: the describing side only sends.
    SendOnly,
    /// `a=recvonly`: the describing side only receives.
    RecvOnly,
    /// `a=inactive`: nobody sends.
    Inactive,
}

impl Direction {
    /// The attribute name (`sendrecv`, `sendonly`, `recvonly`, `inactive`).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Reads an attribute name; `None` if it is not a direction.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    /// The direction an answer gives a stream offered with `self`, when the answerer is willing
    /// to do everything offered (RFC 3264 §6.1): sendonly ↔ recvonly, the others unchanged.
    pub fn reversed(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// The direction to offer to put a stream currently at `self` on hold (RFC 6337 §5.1):
    /// stop receiving, keep sending if we did (sendrecv → sendonly, recvonly → inactive).
    pub fn held(self) -> Self {
        match self {
            Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
            Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
        }
    }

    /// The direction to offer to take our hold back from a stream at `self` (RFC 6337 §5.3):
    /// receive again (sendonly → sendrecv, inactive → recvonly).
    pub fn resumed(self) -> Self {
        match self {
            Direction::SendRecv | Direction::SendOnly => Direction::SendRecv,
            Direction::RecvOnly | Direction::Inactive => Direction::RecvOnly,
        }
    }

    /// The direction that sends and receives as told.
    pub fn from_flags(sends: bool, receives: bool) -> Self {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// What both `self` and `other` allow, seen from the same side: a stream that we want at
    /// `self` and the peer's description permits at `other` (already reversed to our side).
    pub fn intersect(self, other: Direction) -> Self {
        Direction::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    /// True if the describing side wants to receive.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// True if the describing side will send.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Direction; 4] = [
        Direction::SendRecv,
        Direction::SendOnly,
        Direction::RecvOnly,
        Direction::Inactive,
    ];

    #[test]
    fn names_round_trip() {
        for d in ALL {
            assert_eq!(Direction::from_name(d.as_str()), Some(d));
        }
        assert_eq!(Direction::from_name("SENDONLY"), None);
    }

    #[test]
    fn answers_mirror_offers() {
        assert_eq!(Direction::SendOnly.reversed(), Direction::RecvOnly);
        assert_eq!(Direction::RecvOnly.reversed(), Direction::SendOnly);
        assert_eq!(Direction::SendRecv.reversed(), Direction::SendRecv);
        assert_eq!(Direction::Inactive.reversed(), Direction::Inactive);
        for d in ALL {
            assert_eq!(d.reversed().reversed(), d);
        }
    }

    #[test]
    fn hold_follows_rfc6337() {
        assert_eq!(Direction::SendRecv.held(), Direction::SendOnly);
        assert_eq!(Direction::RecvOnly.held(), Direction::Inactive);
        // Holding twice changes nothing; resuming gives back what holding took.
        for d in ALL {
            assert_eq!(d.held().held(), d.held());
            assert!(!d.held().receives());
        }
        assert_eq!(Direction::SendRecv.held().resumed(), Direction::SendRecv);
        assert_eq!(Direction::RecvOnly.held().resumed(), Direction::RecvOnly);
    }

    #[test]
    fn intersect_keeps_what_both_allow() {
        for a in ALL {
            assert_eq!(a.intersect(Direction::SendRecv), a);
            assert_eq!(a.intersect(Direction::Inactive), Direction::Inactive);
            assert_eq!(Direction::from_flags(a.sends(), a.receives()), a);
        }
        assert_eq!(
            Direction::SendOnly.intersect(Direction::RecvOnly),
            Direction::Inactive
        );
        assert_eq!(
            Direction::SendRecv.intersect(Direction::RecvOnly),
            Direction::RecvOnly
        );
    }
}
