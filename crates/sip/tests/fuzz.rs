//! Property tests: random bytes and mutated torture messages never panic the parser or the UA.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lyrebird_sip::{UaConfig, UserAgent, message};
use proptest::prelude::*;

fn corpus() -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/torture");
    let mut out = Vec::new();
    for dir in ["valid", "invalid", "ipv6"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            out.push(std::fs::read(e.unwrap().path()).unwrap());
        }
    }
    out.sort();
    out
}

fn feed(bytes: &[u8]) {
    let _ = message::parse(bytes);
    let _ = message::parse_stream(bytes);
    let _ = message::salvage(bytes);
    let mut ua = UserAgent::new(UaConfig {
        aor: "sip:bob@example.com".into(),
        display_name: None,
        auth_username: None,
        password: "pw".into(),
        instance_id: "00000000-0000-4000-8000-000000000009".into(),
        register_expires: 600,
        user_agent: "fuzz".into(),
        secure: true,
        outbound_proxy: None,
        rng_seed: 1,
    })
    .unwrap();
    let now = Instant::now();
    ua.handle_connected(now);
    ua.register(now).unwrap();
    ua.handle_input(now, bytes);
    ua.handle_input(now, bytes);
    ua.handle_timeout(now + Duration::from_secs(40));
    while ua.poll_transmit().is_some() {}
    while ua.poll_event().is_some() {}
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        feed(&bytes);
    }

    #[test]
    fn mutated_torture_messages_never_panic(
        pick in 0usize..64,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let corpus = corpus();
        let mut msg = corpus[pick % corpus.len()].clone();
        for (idx, byte, op) in edits {
            if msg.is_empty() { break; }
            let i = idx.index(msg.len());
            match op {
                0 => msg[i] = byte,
                1 => { msg.remove(i); }
                _ => msg.insert(i, byte),
            }
        }
        feed(&msg);
    }

    #[test]
    fn truncated_torture_messages_never_panic(pick in 0usize..64, cut in any::<prop::sample::Index>()) {
        let corpus = corpus();
        let msg = &corpus[pick % corpus.len()];
        feed(&msg[..cut.index(msg.len() + 1)]);
    }
}
