//! The messages an XMPP account has shown lately, so that a copy arriving again (a resend
//! after a session that could not be resumed, or the archive catch-up) is not shown twice.

use std::collections::{HashSet, VecDeque};

/// How many live messages [`RecentMessages`] remembers: more than a session leaves
/// unacknowledged in practice.
const RECENT_MESSAGES: usize = 1024;

/// The last messages shown (live or from the archive), by conversation and stable id. When a
/// session cannot be resumed (a restarted server forgot it), the sender sends again what the
/// old session had not acknowledged, and some of it had arrived already (XEP-0198 §6 leaves
/// such copies to the receiver); the archive catch-up brings some of the same messages too.
/// History keeps one copy by stable id; this keeps the front end from showing a copy again.
#[derive(Default)]
pub(super) struct RecentMessages {
    order: VecDeque<(String, String)>,
    seen: HashSet<(String, String)>,
}

impl RecentMessages {
    /// Remembers a message; false when it was remembered already.
    pub(super) fn first_time(&mut self, peer: &str, stable_id: &str) -> bool {
        let key = (peer.to_owned(), stable_id.to_owned());
        if self.seen.contains(&key) {
            return false;
        }
        if self.order.len() >= RECENT_MESSAGES
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        self.order.push_back(key.clone());
        self.seen.insert(key);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_shown_once_per_conversation_and_the_memory_is_bounded() {
        let mut recent = RecentMessages::default();
        assert!(recent.first_time("bob@example.com", "m1"));
        assert!(!recent.first_time("bob@example.com", "m1"));
        assert!(recent.first_time("carol@example.com", "m1"));
        for i in 0..RECENT_MESSAGES {
            assert!(recent.first_time("dave@example.com", &format!("x{i}")));
        }
        assert_eq!(recent.order.len(), RECENT_MESSAGES);
        assert_eq!(recent.seen.len(), RECENT_MESSAGES);
        // The oldest were forgotten; the newest are still known.
        assert!(recent.first_time("bob@example.com", "m1"));
        assert!(!recent.first_time("dave@example.com", &format!("x{}", RECENT_MESSAGES - 1)));
    }
}
