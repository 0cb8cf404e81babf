//! The history (a ring of the last [`HISTORY`] events) and the followers
//! (a broadcast channel). A follower takes the history and its place in
//! the channel under the same lock, so it sees every event once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::broadcast;

use super::{Event, Kind};

/// Events kept for `GET /api/v1/events`.
pub const HISTORY: usize = 1000;

/// A follower's channel; a follower that falls this far behind is told it
/// missed some (`Lagged`) rather than holding memory for it.
const FOLLOW_BUFFER: usize = 256;

pub struct Bus {
    ring: Mutex<Ring>,
    tx: broadcast::Sender<Arc<Event>>,
}

struct Ring {
    capacity: usize,
    last_id: u64,
    events: VecDeque<Arc<Event>>,
}

/// A follower: the events after the one it named, then the live ones.
pub type Follow = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

impl Bus {
    pub fn new(capacity: usize) -> Bus {
        Bus {
            ring: Mutex::new(Ring {
                capacity: capacity.max(1),
                last_id: 0,
                events: VecDeque::new(),
            }),
            tx: broadcast::channel(FOLLOW_BUFFER).0,
        }
    }

    pub fn publish(&self, kind: Kind, app: Option<&str>, instance: Option<&str>, message: String) {
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let mut ring = match self.ring.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        ring.last_id += 1;
        let event = Arc::new(Event {
            id: ring.last_id,
            at,
            kind,
            app: app.map(str::to_owned),
            instance: instance.map(str::to_owned),
            message,
        });
        if ring.events.len() == ring.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(event.clone());
        // Under the lock: a follower that joins now either has it in its
        // history or gets it from the channel, never both nor neither.
        let _ = self.tx.send(event);
    }

    /// The kept events with an id above `after`, oldest first.
    pub fn since(&self, after: u64) -> Follow {
        let ring = match self.ring.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        let kept = ring
            .events
            .iter()
            .filter(|e| e.id > after)
            .cloned()
            .collect();
        (kept, self.tx.subscribe())
    }
}
