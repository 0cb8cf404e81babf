//! Rate limits: the *admit* phase's `rate_limits:` rules, written once for
//! both engines. An engine builds the request's [`Asked`] from its
//! engine-neutral view once the route is known (`RateLimits::asks`), waits
//! for [`RateLimits::decide`] — at once with the memory store, one round
//! trip with Redis — and either answers the refusal (429, `Retry-After`,
//! the RateLimit headers) or serves the request and adds the headers to
//! its response ([`RateNote`]).
//!
//! The counting itself is `state`'s (GCRA in a [`Store`]); what outlives a
//! config reload — the store, each rule's live settings and counts — is in
//! the [`Limiter`], which the reload hands to the new config's rules.

mod keybuf;
pub(crate) mod note;
mod rule;
mod settings;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use shoal_config::{OnError, RateLimitConfig};
use smallvec::SmallVec;

pub use note::RateNote;
pub use rule::Rule;
pub use settings::{Live, Setting};

use crate::balance::RequestView;
use crate::routes::RouteTable;
use crate::state::{lease, Ask, Backend, Leases, MemoryStore, Quota, RedisStore, Store, Verdict};

/// What outlives a config: the store and each rule's live state, by name.
pub struct Limiter {
    store: Backend,
    on_error: OnError,
    /// Counts while the store cannot answer (`on_error: local`).
    local: MemoryStore,
    /// What `mode: lease` rules hold in this replica (with Redis).
    leases: Leases,
    rules: Mutex<BTreeMap<Arc<str>, Arc<Live>>>,
    /// With Redis: run-time changes this replica made that Redis has not
    /// taken yet (`None`: an override removed). Held across a publish and
    /// across a poll's read-and-apply, so a poll never undoes a change
    /// being published.
    unpublished: tokio::sync::Mutex<BTreeMap<String, Option<Setting>>>,
}

/// How often a replica reads the run-time changes the others published.
const OVERRIDE_POLL: std::time::Duration = std::time::Duration::from_millis(250);

impl Limiter {
    pub fn new(state: &shoal_config::StateConfig) -> Limiter {
        Limiter {
            store: Backend::for_config(state),
            on_error: state.on_error,
            local: MemoryStore::new(state.max_keys),
            leases: Leases::new(state.max_keys),
            rules: Mutex::default(),
            unpublished: Default::default(),
        }
    }

    /// Starts what runs beside the requests: with Redis, reading the
    /// run-time changes other replicas published (every 250 ms, so a change
    /// reaches every replica within a second). Ends with the limiter.
    pub fn start(limiter: &Arc<Limiter>) {
        if matches!(limiter.store, Backend::Redis(_)) {
            tokio::spawn(follow_overrides(Arc::downgrade(limiter)));
        }
    }

    /// The Redis store, if the config asks for one.
    pub fn redis(&self) -> Option<&RedisStore> {
        match &self.store {
            Backend::Redis(r) => Some(r),
            Backend::Memory(_) => None,
        }
    }

    /// With Redis: publish what waits, then take every published change.
    async fn sync_overrides(&self) -> Result<(), crate::state::StateError> {
        let Backend::Redis(redis) = &self.store else {
            return Ok(());
        };
        if redis.connected() == 0 {
            // Not a request's failure: nothing to count or say; the
            // store's connect task says whether Redis is away.
            return Ok(());
        }
        let mut unpublished = self.unpublished.lock().await;
        while let Some((name, setting)) = unpublished.pop_first() {
            if let Err(e) = redis.publish_override(&name, text(setting)).await {
                unpublished.insert(name, setting);
                return Err(e);
            }
        }
        let published = redis.overrides().await?;
        for (name, live) in self.snapshot() {
            let wanted = published
                .get(&*name)
                .and_then(|t| serde_json::from_str::<Setting>(t).ok());
            if live.settings().1 != wanted {
                live.set_override(wanted);
                self.leases.clear();
                match wanted {
                    Some(s) => {
                        tracing::info!(rule = %name, rate = %s.rate, burst = s.burst, enabled = s.enabled, "rate limit changed by another replica")
                    }
                    None => {
                        tracing::info!(rule = %name, "rate limit back to its config (another replica removed the change)")
                    }
                }
            }
        }
        Ok(())
    }

    fn rules(&self) -> std::sync::MutexGuard<'_, BTreeMap<Arc<str>, Arc<Live>>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live state of each rule of `configs` (kept for names seen
    /// before, with their counts and run-time changes); rules no longer in
    /// the config are forgotten.
    fn live_for(&self, configs: &[RateLimitConfig]) -> Vec<Arc<Live>> {
        let mut all = self.rules();
        all.retain(|name, _| configs.iter().any(|c| *c.name == **name));
        configs
            .iter()
            .map(|c| {
                let live = all
                    .entry(c.name.as_str().into())
                    .or_insert_with(|| Arc::new(Live::new(c)));
                live.configure(c);
                live.clone()
            })
            .collect()
    }

    /// Every rule's name and live state, by name.
    pub fn snapshot(&self) -> Vec<(Arc<str>, Arc<Live>)> {
        self.rules()
            .iter()
            .map(|(n, l)| (n.clone(), l.clone()))
            .collect()
    }

    /// The live state of rule `name`.
    pub fn rule(&self, name: &str) -> Option<Arc<Live>> {
        self.rules().get(name).cloned()
    }

    /// A run-time change of rule `name` (`None`: back to the config's).
    /// With Redis it is published for every replica sharing it; if Redis
    /// cannot take it now, it applies here and is published once Redis
    /// answers again.
    pub async fn set_override(&self, name: &str, live: &Live, setting: Option<Setting>) {
        let Backend::Redis(redis) = &self.store else {
            live.set_override(setting);
            return;
        };
        let mut unpublished = self.unpublished.lock().await;
        live.set_override(setting);
        self.leases.clear();
        unpublished.remove(name);
        if let Err(e) = redis.publish_override(name, text(setting)).await {
            tracing::warn!(rule = name, error = %e, "the rate-limit change applies here; it reaches the other replicas once Redis answers");
            unpublished.insert(name.to_string(), setting);
        }
    }

    /// Keys held in this process (the memory store and the fallback).
    pub fn local_keys(&self) -> usize {
        self.store.in_process().map_or(0, MemoryStore::len) + self.local.len()
    }

    /// `memory` or `redis`.
    pub fn backend(&self) -> &'static str {
        self.store.kind()
    }

    /// Forget the count of `key` (`RateLimits::key_of`).
    pub async fn forget(&self, key: &[u8]) -> Result<bool, crate::state::StateError> {
        self.leases.forget(key);
        let local = self.local.forget_key(key);
        Ok(self.store.forget(key).await? || local)
    }

    async fn verdicts(&self, asks: &[Ask<'_>], lives: &[&Live]) -> Vec<Verdict> {
        use std::sync::atomic::Ordering::Relaxed;
        if let Backend::Redis(redis) = &self.store {
            if lives.iter().any(|l| l.lease.load(Relaxed)) {
                return self.leased(redis, asks, lives).await;
            }
        }
        let mut out = Vec::with_capacity(asks.len());
        match self.store.check(asks, &mut out).await {
            Ok(()) => out,
            Err(e) => self.undecided(&e, asks, lives),
        }
    }

    /// `on_error`'s verdicts for asks the store could not decide.
    fn undecided(
        &self,
        e: &crate::state::StateError,
        asks: &[Ask<'_>],
        lives: &[&Live],
    ) -> Vec<Verdict> {
        tracing::debug!(error = %e, on_error = ?self.on_error, "rate limit undecided");
        for live in lives {
            live.errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        match self.on_error {
            OnError::Allow => asks.iter().map(|a| Verdict::uncounted(a.quota)).collect(),
            OnError::Deny => asks.iter().map(|a| Verdict::refused(a.quota)).collect(),
            OnError::Local => {
                let now = crate::clock::now_ns();
                asks.iter()
                    .map(|a| self.local.decide(a.key, a.quota, now))
                    .collect()
            }
        }
    }

    /// With `mode: lease` rules among them: what this replica holds
    /// decides what it can; the rest go to Redis in one call, leases
    /// asking for [`lease::size`] tokens.
    async fn leased(&self, redis: &RedisStore, asks: &[Ask<'_>], lives: &[&Live]) -> Vec<Verdict> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = crate::clock::now_ns();
        let mut out: Vec<Option<Verdict>> = asks
            .iter()
            .zip(lives)
            .map(|(a, l)| {
                l.lease
                    .load(Relaxed)
                    .then(|| self.leases.take(a.key, a.quota, now))
                    .flatten()
            })
            .collect();
        let todo: Vec<usize> = (0..asks.len()).filter(|i| out[*i].is_none()).collect();
        if !todo.is_empty() {
            let sub: Vec<Ask<'_>> = todo.iter().map(|i| asks[*i]).collect();
            let sub_lives: Vec<&Live> = todo.iter().map(|i| lives[*i]).collect();
            let wants: Vec<u32> = todo
                .iter()
                .map(|i| {
                    if lives[*i].lease.load(Relaxed) {
                        lease::size(asks[*i].quota)
                    } else {
                        1
                    }
                })
                .collect();
            match redis.decide(&sub, &wants).await {
                Ok(decided) => {
                    for ((i, (v, granted)), want) in todo.iter().zip(decided).zip(&wants) {
                        let a = asks[*i];
                        out[*i] = Some(if *want > 1 {
                            self.leases.keep(a.key, a.quota, now, v, granted)
                        } else {
                            v
                        });
                    }
                }
                Err(e) => {
                    for (i, v) in todo.iter().zip(self.undecided(&e, &sub, &sub_lives)) {
                        out[*i] = Some(v);
                    }
                }
            }
        }
        // Every ask was decided above, one way or the other.
        out.into_iter()
            .zip(asks)
            .map(|(v, a)| v.unwrap_or_else(|| Verdict::refused(a.quota)))
            .collect()
    }
}

/// A run-time setting as Redis keeps it (JSON).
fn text(setting: Option<Setting>) -> Option<String> {
    setting.map(|s| serde_json::to_string(&s).unwrap_or_default())
}

/// Every [`OVERRIDE_POLL`], until the limiter is gone.
async fn follow_overrides(limiter: std::sync::Weak<Limiter>) {
    let mut tick = tokio::time::interval(OVERRIDE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(limiter) = limiter.upgrade() else {
            return;
        };
        // Failures are the store's to report (once per change).
        let _ = limiter.sync_overrides().await;
    }
}

/// A config's rules, over the process's [`Limiter`].
pub struct RateLimits {
    rules: Vec<Rule>,
    limiter: Arc<Limiter>,
}

/// The keys one request is counted under: each applying rule's index and
/// where its key ends in one buffer.
#[derive(Default)]
pub struct Asked {
    rules: SmallVec<[(usize, usize); 4]>,
    keys: keybuf::KeyBuf,
}

impl Asked {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Each applying rule's index and key.
    fn each(&self) -> impl Iterator<Item = (usize, &[u8])> {
        let mut start = 0;
        self.rules.iter().map(move |&(rule, end)| {
            let key = &self.keys.as_slice()[start..end];
            start = end;
            (rule, key)
        })
    }
}

/// What the limits made of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Serve it; its response carries the note, if a rule asks for it.
    Pass(Option<RateNote>),
    /// Answer 429 with the note.
    Refuse(RateNote),
}

impl Outcome {
    /// `allowed` or `limited`, for the access log.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Pass(_) => "allowed",
            Outcome::Refuse(_) => "limited",
        }
    }
}

impl RateLimits {
    pub fn new(
        configs: &[RateLimitConfig],
        routes: &RouteTable,
        limiter: Arc<Limiter>,
    ) -> RateLimits {
        let lives = limiter.live_for(configs);
        let rules = configs
            .iter()
            .zip(lives)
            .map(|(c, live)| Rule::new(c, routes, live))
            .collect();
        RateLimits { rules, limiter }
    }

    /// No rules (tests, the fuzz targets).
    pub fn none() -> RateLimits {
        RateLimits {
            rules: Vec::new(),
            limiter: Arc::new(Limiter::new(&Default::default())),
        }
    }

    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// The keys `req` is counted under: it took route `route` (named
    /// `route_name`), or none (`None`). No allocation when no rule applies.
    pub fn asks(&self, req: &RequestView<'_>, route: Option<usize>, route_name: &str) -> Asked {
        let mut asked = Asked::default();
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.applies(req, route) {
                continue;
            }
            let start = asked.keys.len();
            if rule.key(req, route_name, &mut asked.keys) {
                asked.rules.push((i, asked.keys.len()));
            } else {
                asked.keys.truncate(start);
            }
        }
        asked
    }

    /// The key rule `name` counts `identity` under, as the admin API names
    /// it (`RateLimits::asks` writes the same bytes for a request).
    pub fn key_of(&self, name: &str, identity: &str) -> Option<Result<Vec<u8>, String>> {
        let rule = self.rules.iter().find(|r| &*r.name == name)?;
        Some(rule.key_of(identity))
    }

    /// The decision for a request counted under `asked`, made here when the
    /// store is this process's (no future, no buffer); `None`: it takes
    /// [`decide`](Self::decide).
    pub fn decide_now(&self, asked: &Asked) -> Option<Outcome> {
        if asked.is_empty() {
            return Some(Outcome::Pass(None));
        }
        let store = self.limiter.store.in_process()?;
        let now = crate::clock::now_ns();
        let mut tally = Tally::default();
        for (i, key) in asked.each() {
            let live = &*self.rules[i].live;
            let quota = live.quota();
            tally.add(store.decide(key, quota, now), live, quota);
        }
        Some(tally.outcome())
    }

    /// The decision for a request counted under `asked` (every applying
    /// rule counts it; the first refusal answers).
    pub async fn decide(&self, asked: Asked) -> Outcome {
        if let Some(now) = self.decide_now(&asked) {
            return now;
        }
        let lives: SmallVec<[&Live; 4]> = asked
            .rules
            .iter()
            .map(|(i, _)| &*self.rules[*i].live)
            .collect();
        let quotas: SmallVec<[Quota; 4]> = lives.iter().map(|l| l.quota()).collect();
        let mut tally = Tally::default();
        let asks: SmallVec<[Ask<'_>; 4]> = asked
            .each()
            .zip(&quotas)
            .map(|((_, key), quota)| Ask { key, quota: *quota })
            .collect();
        let verdicts = self.limiter.verdicts(&asks, &lives).await;
        for ((v, live), quota) in verdicts.into_iter().zip(&lives).zip(&quotas) {
            tally.add(v, live, *quota);
        }
        tally.outcome()
    }
}

/// The verdicts of one request's rules, as they come: counted per rule,
/// and the one its response speaks of.
#[derive(Default)]
struct Tally {
    /// The refusal with the longest wait.
    refused: Option<(Verdict, Quota)>,
    /// The allowed rule (with headers on) with the fewest requests left.
    tightest: Option<(Verdict, Quota)>,
}

impl Tally {
    fn add(&mut self, v: Verdict, live: &Live, quota: Quota) {
        use std::sync::atomic::Ordering::Relaxed;
        if v.allowed {
            live.allowed.fetch_add(1, Relaxed);
            if live.headers.load(Relaxed)
                && self.tightest.is_none_or(|(t, _)| v.remaining < t.remaining)
            {
                self.tightest = Some((v, quota));
            }
        } else {
            live.limited.fetch_add(1, Relaxed);
            if self
                .refused
                .is_none_or(|(r, _)| v.retry_after_ns > r.retry_after_ns)
            {
                self.refused = Some((v, quota));
            }
        }
    }

    fn outcome(self) -> Outcome {
        if let Some((v, q)) = self.refused {
            return Outcome::Refuse(RateNote {
                limit: q.burst,
                remaining: 0,
                reset_s: note::secs_up(v.reset_ns),
                retry_after_s: Some(note::secs_up(v.retry_after_ns).max(1)),
            });
        }
        Outcome::Pass(self.tightest.map(|(v, q)| RateNote {
            limit: q.burst,
            remaining: v.remaining,
            reset_s: note::secs_up(v.reset_ns),
            retry_after_s: None,
        }))
    }
}
