//! The lines a session and each of its media sections may both carry: `c=` and `b=`
//! (RFC 8866 §5.7, §5.8). Parsed with the rest of the description (`description.rs`).

use std::fmt;

/// `c=` (RFC 8866 §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Network type, `IN`.
    pub network_type: String,
    /// Address type, `IP4` or `IP6`.
    pub address_type: String,
    /// Address, with any multicast `/ttl/count` suffix as written.
    pub address: String,
}

impl Connection {
    /// True for `IN IP4 0.0.0.0`, which RFC 2543 peers wrote to put a call on hold (RFC 3264
    /// §8.4 still asks answerers to understand it).
    pub fn is_unspecified_ip4(&self) -> bool {
        self.address_type.eq_ignore_ascii_case("IP4") && self.address == "0.0.0.0"
    }
}

/// `b=<type>:<kbit/s or bit/s>` (RFC 8866 §5.8; `TIAS` is RFC 3890).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// `CT`, `AS`, `TIAS`, ...
    pub kind: String,
    /// The number, in the unit the type gives it.
    pub value: u64,
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.network_type, self.address_type, self.address
        )
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}
