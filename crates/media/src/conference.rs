//! A local conference: calls whose media sessions mix each other's voices, so every party hears
//! every other party and the person at this end, and nobody hears themselves (N−1 mixing).
//!
//! Each session already plays its own party to our sink and sends our source to its party. In
//! a conference it also hands every 20 ms frame it received to every other member, and adds
//! what the others received to what it sends. The hand-over is a mesh of single-producer,
//! single-consumer rings (`rtrb`), one per ordered pair of members, allocated when a member
//! joins or leaves — never per frame, and never locked on the media path. Sessions tick on
//! their own 20 ms clocks, so a ring absorbs the phase difference; one that backs up (a clock
//! that runs fast) is read forward so the delay stays bounded.
//!
//! Our own voice reaches each party through that party's session (each captures the source);
//! with the sound card, the parties' voices reach us through their sessions' playback, mixed by
//! the sound server.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tracing::debug;

use crate::codec::FRAME_48K;
use crate::error::MediaError;

/// Frames a ring holds: enough for phase differences and a late tick, little enough to bound
/// the delay.
const RING_FRAMES: usize = 6;
/// More than this many frames waiting means the producer's clock runs ahead: skip to the newest.
const MAX_WAITING_FRAMES: usize = 3;

/// Identifies a session within its conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemberId(u64);

/// One member's ends of the mesh: a ring to every other member and one from each.
pub(crate) struct ConferenceLink {
    outgoing: Vec<rtrb::Producer<f32>>,
    incoming: Vec<rtrb::Consumer<f32>>,
}

impl ConferenceLink {
    /// Hands the frame this member's party said to every other member.
    pub(crate) fn publish(&mut self, frame: &[f32; FRAME_48K]) {
        for ring in &mut self.outgoing {
            // A full ring means that member is not reading (stalled): the frame is dropped.
            if let Ok(chunk) = ring.write_chunk_uninit(FRAME_48K) {
                chunk.fill_from_iter(frame.iter().copied());
            }
        }
    }

    /// Adds what every other member's party said (one frame each, if there) to `frame`.
    pub(crate) fn mix_into(&mut self, frame: &mut [f32; FRAME_48K]) {
        for ring in &mut self.incoming {
            let waiting = ring.slots() / FRAME_48K;
            if waiting == 0 {
                continue;
            }
            if waiting > MAX_WAITING_FRAMES
                && let Ok(stale) = ring.read_chunk((waiting - 1) * FRAME_48K)
            {
                stale.commit_all();
            }
            if let Ok(chunk) = ring.read_chunk(FRAME_48K) {
                let (first, second) = chunk.as_slices();
                for (out, sample) in frame.iter_mut().zip(first.iter().chain(second)) {
                    *out += *sample;
                }
                chunk.commit_all();
            }
        }
        for sample in frame.iter_mut() {
            *sample = sample.clamp(-1.0, 1.0);
        }
    }
}

struct Member {
    id: MemberId,
    links: mpsc::Sender<Option<ConferenceLink>>,
}

/// A conference the engine's calls can join. Cheap to clone; all clones are the same one.
#[derive(Clone, Default)]
pub struct Conference {
    members: Arc<Mutex<Members>>,
}

#[derive(Default)]
struct Members {
    next: u64,
    list: Vec<Member>,
}

impl std::fmt::Debug for Conference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.members.lock().map(|m| m.list.len()).unwrap_or(0);
        f.debug_struct("Conference")
            .field("members", &count)
            .finish()
    }
}

impl Conference {
    /// A conference with nobody in it.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many sessions are in it.
    pub fn len(&self) -> usize {
        self.members.lock().map(|m| m.list.len()).unwrap_or(0)
    }

    /// Nobody is in it.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a session (its media task's link channel); every member gets a new mesh.
    pub(crate) fn join(
        &self,
        links: mpsc::Sender<Option<ConferenceLink>>,
    ) -> Result<MemberId, MediaError> {
        let mut members = self
            .members
            .lock()
            .map_err(|_| MediaError::InvalidState("conference state poisoned"))?;
        members.next += 1;
        let id = MemberId(members.next);
        members.list.push(Member { id, links });
        rewire(&members.list);
        debug!(members = members.list.len(), "a call joined the conference");
        Ok(id)
    }

    /// Takes a session out; the others get a new mesh without it.
    pub(crate) fn leave(&self, id: MemberId) {
        let Ok(mut members) = self.members.lock() else {
            return;
        };
        if let Some(at) = members.list.iter().position(|m| m.id == id) {
            let member = members.list.remove(at);
            let _ = member.links.try_send(None);
        }
        rewire(&members.list);
    }
}

/// Builds the mesh for `members` and hands each its ends.
fn rewire(members: &[Member]) {
    let count = members.len();
    let mut links: Vec<ConferenceLink> = (0..count)
        .map(|_| ConferenceLink {
            outgoing: Vec::with_capacity(count.saturating_sub(1)),
            incoming: Vec::with_capacity(count.saturating_sub(1)),
        })
        .collect();
    for from in 0..count {
        for to in 0..count {
            if from == to {
                continue;
            }
            let (producer, consumer) = rtrb::RingBuffer::new(RING_FRAMES * FRAME_48K);
            links[from].outgoing.push(producer);
            links[to].incoming.push(consumer);
        }
    }
    for (member, link) in members.iter().zip(links) {
        // Alone, a member mixes nothing.
        let link = (count > 1).then_some(link);
        if member.links.try_send(link).is_err() {
            debug!("a conference member's task is gone or busy; it keeps its old mesh");
        }
    }
}
