//! Request coalescing: of concurrent misses for one key, one (the leader)
//! goes to the backend; the others wait until its response is stored or
//! found not to be (the leader's `Lead` is dropped), at most
//! `cache.coalesce.wait`, then look again — and go to the backend
//! themselves if there is still nothing to serve.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Default)]
pub struct Coalescer {
    flights: Arc<Mutex<HashMap<String, Arc<Flight>>>>,
}

#[derive(Default)]
pub struct Flight {
    done: AtomicBool,
    notify: Notify,
}

/// A request's turn at a key.
pub enum Turn {
    /// Go to the backend; others wait until this is dropped.
    Lead(Lead),
    /// Someone is at the backend already: wait for them.
    Wait(Arc<Flight>),
}

/// The leader's hold on a key; dropping it lets the waiters go.
pub struct Lead {
    key: String,
    flight: Arc<Flight>,
    flights: Arc<Mutex<HashMap<String, Arc<Flight>>>>,
}

impl Drop for Lead {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if flights
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            flights.remove(&self.key);
        }
        drop(flights);
        self.flight.done.store(true, Ordering::Release);
        self.flight.notify.notify_waiters();
    }
}

impl Coalescer {
    pub fn join(&self, key: &str) -> Turn {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = flights.get(key) {
            return Turn::Wait(f.clone());
        }
        let flight = Arc::new(Flight::default());
        flights.insert(key.to_string(), flight.clone());
        Turn::Lead(Lead {
            key: key.to_string(),
            flight,
            flights: self.flights.clone(),
        })
    }

    /// Misses in flight now.
    pub fn in_flight(&self) -> usize {
        self.flights.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Flight {
    /// Until the leader is done, at most `wait`; `false` if the time ran
    /// out.
    pub async fn wait(&self, wait: Duration) -> bool {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.done.load(Ordering::Acquire) {
            return true;
        }
        tokio::time::timeout(wait, notified).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leads_the_others_wait_for_it() {
        let c = Coalescer::default();
        let Turn::Lead(lead) = c.join("k") else {
            panic!("first leads")
        };
        let Turn::Wait(f) = c.join("k") else {
            panic!("second waits")
        };
        let Turn::Lead(_other) = c.join("j") else {
            panic!("another key leads")
        };
        let waiter = tokio::spawn(async move { f.wait(Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(lead);
        assert!(waiter.await.unwrap());
        assert!(matches!(c.join("k"), Turn::Lead(_)));
    }

    #[tokio::test]
    async fn the_wait_is_bounded() {
        let c = Coalescer::default();
        let _lead = c.join("k");
        let Turn::Wait(f) = c.join("k") else { panic!() };
        assert!(!f.wait(Duration::from_millis(30)).await);
    }
}
