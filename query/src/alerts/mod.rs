//! The alert engine: rules from the config evaluated over sliding windows of fresh
//! events, with notifications to webhooks, Alertmanager and local programs.
//!
//! Data flow:
//!
//! ```text
//! indexer WAL thread ──Observer (after fsync, de-duplicated)──▶ bounded queue (queue_batches)
//!     ──▶ engine thread: Evaluator::observe per event (rule query → group → window bucket)
//!         every eval_interval: Evaluator::evaluate → transitions → Outbox (one slot per
//!         notifier and alert) → state file
//!     ──▶ dispatcher task (async): due messages → Notifier::send → Outbox::finish
//! ```
//!
//! - The queue never slows ingest: when it is full the batch is left out, counted in
//!   `shiplog_alerts_events_dropped_total`, and the engine rebuilds every window from the
//!   index once the queue has drained (the index has every acknowledged event).
//! - At start and on reload, windows are rebuilt from the events stored in the longest
//!   window (+ `for`) of any rule; alerts, silences and deliveries come back from the state
//!   file ([`store`]), so a restart neither loses nor re-sends an alert.
//! - [`rule`] checks rules, [`window`] holds the buckets, [`eval`] the state machine,
//!   [`silence`] the silences, [`outbox`] the deliveries, [`notify`] the receivers.

pub mod eval;
mod groups;
pub mod notify;
pub mod outbox;
pub mod rule;
pub mod silence;
pub mod store;
pub mod window;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::Serialize;
use shiplog_core::{Event, Timestamp};
use shiplog_indexer::Indexer;
use shiplog_indexer::observer::Observer;
use tokio_util::sync::CancellationToken;

use eval::{AlertState, Evaluator, Instance, Transition};
use notify::{AlertingSettings, Notification, Notifier};
use outbox::Outbox;
use rule::Rule;
use silence::{NewSilence, Silence, SilenceView};

/// Deliveries attempted at once.
const MAX_IN_FLIGHT: usize = 64;

/// Reads the rules and settings again (from the config file), for reloads.
pub type Loader = Box<dyn Fn() -> Result<(Vec<Rule>, AlertingSettings), String> + Send + Sync>;

/// An alert as `GET /api/v1/alerts` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    /// Rule name.
    pub rule: String,
    /// Severity label.
    pub severity: String,
    /// `pending` or `firing`.
    pub state: AlertState,
    /// `group_by` key → value.
    pub group: BTreeMap<String, String>,
    /// Latest measured value.
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// When the condition started to hold (RFC 3339).
    pub since: String,
    /// When it started firing (RFC 3339).
    pub fired_at: Option<String>,
    /// Every label.
    pub labels: BTreeMap<String, String>,
    /// The rule's annotations.
    pub annotations: BTreeMap<String, String>,
    /// A silence matches it.
    pub silenced: bool,
    /// `pending` while a notification waits for delivery, else `ok`.
    pub delivery: &'static str,
    /// The last delivery failure, while one is pending.
    pub delivery_error: Option<String>,
    /// Stable id of rule + group.
    pub fingerprint: String,
    /// The rule's kind.
    pub kind: String,
    /// The rule's comparison.
    pub op: String,
}

/// A transition as `GET /api/v1/alerts/history` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TransitionView {
    /// RFC 3339.
    pub at: String,
    /// Rule name.
    pub rule: String,
    /// Group labels.
    pub group: BTreeMap<String, String>,
    /// Stable id of rule + group.
    pub fingerprint: String,
    /// Old state.
    pub from: AlertState,
    /// New state.
    pub to: AlertState,
    /// Value at the change.
    pub value: f64,
    /// Threshold.
    pub threshold: f64,
}

/// A rule as `GET /api/v1/alerts/rules` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: &'static str,
    /// Query.
    pub query: String,
    /// Window.
    pub window: String,
    /// `for`.
    pub r#for: String,
    /// Comparison.
    pub op: &'static str,
    /// Threshold.
    pub threshold: f64,
    /// Group keys.
    pub group_by: Vec<String>,
    /// Severity.
    pub severity: String,
}

/// Counters for `/metrics` and the bench.
#[derive(Debug, Default)]
pub struct AlertStats {
    /// Events counted into windows.
    pub events: AtomicU64,
    /// Events left out because the engine queue was full.
    pub dropped: AtomicU64,
    /// Rebuilds of the windows from the index.
    pub rebuilds: AtomicU64,
    /// Nanoseconds the engine thread spent on events and evaluations.
    pub busy_ns: AtomicU64,
}

struct Shared {
    eval: Mutex<Evaluator>,
    outbox: Mutex<Outbox>,
    silences: Mutex<Vec<Silence>>,
    notifiers: RwLock<Arc<Vec<Notifier>>>,
    settings: RwLock<AlertingSettings>,
    stats: AlertStats,
    wake: tokio::sync::Notify,
    dirty: AtomicBool,
    resync: AtomicBool,
    external_url: String,
    state_path: PathBuf,
    indexer: Arc<Indexer>,
}

/// A reload for the engine thread: rules, settings, notifiers, and where to answer.
type NewRules = (Vec<Rule>, AlertingSettings, Vec<Notifier>, Sender<usize>);

enum Control {
    SetRules(Box<NewRules>),
    Shutdown,
}

/// The running engine.
pub struct Alerts {
    shared: Arc<Shared>,
    control: Sender<Control>,
    thread: Mutex<Option<JoinHandle<()>>>,
    loader: Option<Loader>,
    shutdown: CancellationToken,
    reloading: Mutex<()>,
}

/// What the engine starts from.
pub struct AlertsConfig {
    /// Checked rules.
    pub rules: Vec<Rule>,
    /// Notifiers and engine settings.
    pub settings: AlertingSettings,
    /// Where `alerts/state` lives.
    pub data_dir: PathBuf,
    /// Base URL for links when the settings give none.
    pub default_url: String,
}

struct Feed {
    tx: Sender<Vec<Arc<Event>>>,
    shared: Arc<Shared>,
}

impl Observer for Feed {
    fn observe(&self, events: &[Arc<Event>]) {
        match self.tx.try_send(events.to_vec()) {
            Ok(()) => {}
            Err(TrySendError::Full(b)) => {
                self.shared
                    .stats
                    .dropped
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
                self.shared.resync.store(true, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ns() -> i64 {
    Timestamp::now().as_nanos()
}

fn rfc3339(ns: i64) -> String {
    Timestamp(ns).to_rfc3339()
}

impl Alerts {
    /// Loads the state file, rebuilds the windows from the index on the engine thread,
    /// registers the engine as an indexer observer and starts the dispatcher on the current
    /// tokio runtime.
    pub fn start(
        indexer: Arc<Indexer>,
        config: AlertsConfig,
        loader: Option<Loader>,
    ) -> Result<Arc<Alerts>, String> {
        let notifiers = config.settings.notifiers()?;
        let state_path = store::path(&config.data_dir);
        let saved = match store::load(&state_path) {
            Ok(s) => s,
            Err(e) => {
                // A damaged file must not keep the node down; alerts re-fire instead.
                tracing::warn!(error = %e, "alert state unreadable; starting without it");
                store::Saved::default()
            }
        };
        let now = now_ns();
        let mut evaluator = Evaluator::new(config.rules, now, config.settings.max_groups);
        evaluator.restore(saved.instances, saved.history);
        let mut outbox = saved.outbox;
        outbox.retain_notifiers(
            &notifiers
                .iter()
                .map(|n| n.name().to_string())
                .collect::<Vec<_>>(),
        );
        let external_url = config
            .settings
            .external_url
            .clone()
            .unwrap_or(config.default_url)
            .trim_end_matches('/')
            .to_string();
        let (tx, rx) = crossbeam_channel::bounded(config.settings.queue_batches.max(1));
        let (control, control_rx) = crossbeam_channel::bounded(4);
        let shared = Arc::new(Shared {
            eval: Mutex::new(evaluator),
            outbox: Mutex::new(outbox),
            silences: Mutex::new(saved.silences),
            notifiers: RwLock::new(Arc::new(notifiers)),
            settings: RwLock::new(config.settings),
            stats: AlertStats::default(),
            wake: tokio::sync::Notify::new(),
            dirty: AtomicBool::new(false),
            resync: AtomicBool::new(false),
            external_url,
            state_path,
            indexer: indexer.clone(),
        });
        // Observe before the rebuild reads the index, so nothing falls in between (the
        // rebuild skips what the queue also holds).
        indexer.add_observer(Arc::new(Feed {
            tx,
            shared: shared.clone(),
        }));
        let engine = Engine {
            shared: shared.clone(),
            rx,
            control: control_rx,
            skip: None,
        };
        let thread = std::thread::Builder::new()
            .name("shiplog-alerts".into())
            .spawn(move || engine.run())
            .map_err(|e| format!("cannot start the alert engine thread: {e}"))?;
        let shutdown = CancellationToken::new();
        tokio::spawn(dispatch(shared.clone(), shutdown.clone()));
        Ok(Arc::new(Alerts {
            shared,
            control,
            thread: Mutex::new(Some(thread)),
            loader,
            shutdown,
            reloading: Mutex::new(()),
        }))
    }

    /// Pending and firing alerts, firing first, then by rule and group.
    pub fn alerts(&self) -> Vec<AlertView> {
        let now = now_ns();
        let silences = lock(&self.shared.silences).clone();
        // Lock order everywhere: eval, then outbox, then silences.
        let eval = lock(&self.shared.eval);
        let outbox = lock(&self.shared.outbox);
        let mut out: Vec<AlertView> = eval
            .instances()
            .map(|i| {
                let (pending, error) = outbox.pending(&i.fingerprint);
                AlertView {
                    rule: i.rule.clone(),
                    severity: i.severity.clone(),
                    state: i.state,
                    group: i.group.clone(),
                    value: i.value,
                    threshold: i.threshold,
                    since: rfc3339(i.active_at),
                    fired_at: i.fired_at.map(rfc3339),
                    labels: i.labels.clone(),
                    annotations: i.annotations.clone(),
                    silenced: silenced(&silences, i, now),
                    delivery: if pending { "pending" } else { "ok" },
                    delivery_error: error,
                    fingerprint: i.fingerprint.clone(),
                    kind: i.kind.clone(),
                    op: i.op.clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (b.state == AlertState::Firing)
                .cmp(&(a.state == AlertState::Firing))
                .then_with(|| a.rule.cmp(&b.rule))
                .then_with(|| a.group.cmp(&b.group))
        });
        out
    }

    /// The newest `limit` transitions, newest first.
    pub fn history(&self, limit: usize) -> Vec<TransitionView> {
        let eval = lock(&self.shared.eval);
        eval.history()
            .rev()
            .take(limit)
            .map(|t| TransitionView {
                at: rfc3339(t.at),
                rule: t.rule.clone(),
                group: t.group.clone(),
                fingerprint: t.fingerprint.clone(),
                from: t.from,
                to: t.to,
                value: t.value,
                threshold: t.threshold,
            })
            .collect()
    }

    /// The loaded rules.
    pub fn rules(&self) -> Vec<RuleView> {
        let eval = lock(&self.shared.eval);
        eval.rules()
            .map(|r| RuleView {
                name: r.name.clone(),
                kind: r.kind.as_str(),
                query: r.query.text.clone(),
                window: shiplog_core::units::HumanDuration(Duration::from_nanos(
                    r.window_ns as u64,
                ))
                .to_string(),
                r#for: shiplog_core::units::HumanDuration(Duration::from_nanos(r.for_ns as u64))
                    .to_string(),
                op: r.op.as_str(),
                threshold: r.threshold,
                group_by: r.group_by.iter().map(|g| g.label()).collect(),
                severity: r.severity.clone(),
            })
            .collect()
    }

    /// Reads the rules again through the loader; on any error the running rules stay.
    /// Blocking (reads the file, then waits for the engine to rebuild its windows).
    pub fn reload(&self) -> Result<usize, String> {
        let Some(loader) = &self.loader else {
            return Err(
                "this node was started without a config file: there is nothing to reload".into(),
            );
        };
        let _one = lock(&self.reloading);
        let (rules, settings) = loader()?;
        let names = settings.names();
        for r in &rules {
            for n in &r.notify {
                if !names.contains(n) {
                    return Err(format!(
                        "alert '{}': notify: no notifier named '{n}'",
                        r.name
                    ));
                }
            }
        }
        let notifiers = settings.notifiers()?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.control
            .send(Control::SetRules(Box::new((
                rules, settings, notifiers, tx,
            ))))
            .map_err(|_| "the alert engine has stopped".to_string())?;
        rx.recv()
            .map_err(|_| "the alert engine has stopped".to_string())
    }

    /// Adds a silence; returns its id.
    pub fn add_silence(&self, req: NewSilence) -> Result<String, String> {
        let now = now_ns();
        let id = {
            use sha2::{Digest, Sha256};
            let d = Sha256::digest(format!("{now}:{:?}", req.matchers).as_bytes());
            d[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let s = Silence::from_request(req, now, id.clone())?;
        let mut list = lock(&self.shared.silences);
        // Expired silences go first when the list is full.
        if list.len() >= silence::MAX_SILENCES {
            list.retain(|s| s.ends_at > now);
        }
        if list.len() >= silence::MAX_SILENCES {
            return Err(format!(
                "{} silences are active, the most kept: expire some first",
                list.len()
            ));
        }
        list.push(s);
        self.shared.dirty.store(true, Ordering::Relaxed);
        Ok(id)
    }

    /// Every silence, newest first.
    pub fn silences(&self) -> Vec<SilenceView> {
        let now = now_ns();
        let list = lock(&self.shared.silences);
        list.iter().rev().map(|s| s.view(now)).collect()
    }

    /// Ends a silence now; `false` when no silence has that id.
    pub fn expire_silence(&self, id: &str) -> bool {
        let now = now_ns();
        let mut list = lock(&self.shared.silences);
        let Some(s) = list.iter_mut().find(|s| s.id == id) else {
            return false;
        };
        s.ends_at = s.ends_at.min(now);
        self.shared.dirty.store(true, Ordering::Relaxed);
        true
    }

    /// Counters.
    pub fn stats(&self) -> &AlertStats {
        &self.shared.stats
    }

    /// (delivered, failed attempts) since start.
    pub fn deliveries(&self) -> (u64, u64) {
        let o = lock(&self.shared.outbox);
        (o.delivered, o.failures)
    }

    /// Groups refused because a rule had `max_groups`.
    pub fn refused_groups(&self) -> u64 {
        lock(&self.shared.eval).refused_groups()
    }

    /// Stops the engine and the dispatcher and writes the state file. Blocking.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
        let _ = self.control.send(Control::Shutdown);
        if let Some(t) = lock(&self.thread).take()
            && t.join().is_err()
        {
            tracing::error!("alert engine thread panicked");
        }
    }
}

fn silenced(silences: &[Silence], i: &Instance, now: i64) -> bool {
    silences
        .iter()
        .any(|s| s.active(now) && s.matches(&i.labels))
}

struct Engine {
    shared: Arc<Shared>,
    rx: Receiver<Vec<Arc<Event>>>,
    control: Receiver<Control>,
    /// After a rebuild: ids it counted, and how many queued batches may repeat them.
    skip: Option<(HashSet<u128>, usize)>,
}

impl Engine {
    fn run(mut self) {
        self.rebuild();
        let mut next_tick = Instant::now();
        loop {
            let every = self
                .shared
                .settings
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .eval_interval
                .0;
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + every;
                if self.shared.resync.load(Ordering::Relaxed) && self.rx.is_empty() {
                    self.shared.resync.store(false, Ordering::Relaxed);
                    tracing::warn!("alert queue overflowed; rebuilding the windows from the index");
                    self.rebuild();
                }
            }
            let wait = next_tick.saturating_duration_since(Instant::now());
            crossbeam_channel::select! {
                recv(self.rx) -> batch => match batch {
                    Ok(b) => self.observe(&b),
                    Err(_) => break,
                },
                recv(self.control) -> msg => match msg {
                    Ok(Control::SetRules(set)) => {
                        let (rules, settings, notifiers, reply) = *set;
                        let n = rules.len();
                        let names: Vec<String> = notifiers.iter().map(|n| n.name().to_string()).collect();
                        lock(&self.shared.eval).set_rules(rules, now_ns());
                        lock(&self.shared.outbox).retain_notifiers(&names);
                        *self.shared.notifiers.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(notifiers);
                        *self.shared.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
                        self.rebuild();
                        self.tick();
                        tracing::info!(rules = n, "alert rules reloaded");
                        let _ = reply.send(n);
                    }
                    Ok(Control::Shutdown) | Err(_) => break,
                },
                default(wait) => {}
            }
        }
        self.persist();
    }

    fn observe(&mut self, batch: &[Arc<Event>]) {
        let started = Instant::now();
        let now = now_ns();
        let mut eval = lock(&self.shared.eval);
        let mut counted = 0u64;
        match &mut self.skip {
            Some((ids, left)) => {
                for e in batch {
                    if !ids.contains(&e.id.0) {
                        eval.observe(e, now);
                        counted += 1;
                    }
                }
                *left = left.saturating_sub(1);
                if *left == 0 {
                    self.skip = None;
                }
            }
            None => {
                for e in batch {
                    eval.observe(e, now);
                }
                counted = batch.len() as u64;
            }
        }
        drop(eval);
        let stats = &self.shared.stats;
        stats.events.fetch_add(counted, Ordering::Relaxed);
        stats
            .busy_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Refills every window from the index (events of the longest window + `for`).
    fn rebuild(&mut self) {
        let started = Instant::now();
        let ix = &self.shared.indexer;
        // Everything observed so far becomes searchable, so clearing the windows loses
        // nothing.
        if let Err(e) = ix.flush() {
            tracing::warn!(error = %e, "cannot commit before rebuilding alert windows");
        }
        let now = now_ns();
        let (lookback, cap) = {
            let mut eval = lock(&self.shared.eval);
            eval.clear_windows();
            let cap = self
                .shared
                .settings
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .rebuild_max_events;
            (eval.lookback_ns(), cap)
        };
        self.shared.stats.rebuilds.fetch_add(1, Ordering::Relaxed);
        if lookback == 0 {
            return;
        }
        let mut ids = HashSet::new();
        let mut cursor = None;
        loop {
            let req = shiplog_indexer::SearchRequest {
                query: shiplog_core::query::Query::All,
                since: Some(Timestamp(now - lookback)),
                until: Some(Timestamp(now)),
                limit: shiplog_indexer::search::MAX_LIMIT,
                cursor: cursor.take(),
            };
            let page = match ix.search(&req) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read stored events to rebuild alert windows; they start from live events");
                    break;
                }
            };
            {
                let mut eval = lock(&self.shared.eval);
                for e in &page.hits {
                    eval.observe(e, now);
                    ids.insert(e.id.0);
                }
            }
            if ids.len() >= cap {
                tracing::warn!(
                    events = ids.len(),
                    "alert windows rebuilt from the newest events only (rebuild_max_events)"
                );
                break;
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let queued = self.rx.len();
        tracing::info!(
            events = ids.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "alert windows rebuilt from the index"
        );
        self.skip = (queued > 0).then_some((ids, queued));
    }

    fn tick(&mut self) {
        let started = Instant::now();
        let now = now_ns();
        let transitions = lock(&self.shared.eval).evaluate(now);
        for t in &transitions {
            tracing::info!(rule = %t.rule, group = ?t.group, from = t.from.as_str(), to = t.to.as_str(), value = t.value, "alert state changed");
        }
        self.plan(&transitions, now);
        let dirty = !transitions.is_empty()
            || self.shared.dirty.swap(false, Ordering::Relaxed)
            || lock(&self.shared.outbox).dirty;
        if dirty {
            self.persist();
        }
        self.shared
            .stats
            .busy_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Queues the messages the current alerts call for.
    fn plan(&self, transitions: &[Transition], now: i64) {
        let notifiers = self
            .shared
            .notifiers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let repeat = self
            .shared
            .settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .repeat_interval
            .0;
        let silences = lock(&self.shared.silences).clone();
        let eval = lock(&self.shared.eval);
        let mut outbox = lock(&self.shared.outbox);
        let mut queued = false;
        // Resolutions: to every notifier that got (or is getting) the firing message.
        for t in transitions.iter().filter(|t| t.to == AlertState::Resolved) {
            for n in notifiers.iter() {
                let name = n.name();
                let in_flight = outbox
                    .queued(name, &t.fingerprint)
                    .is_some_and(|i| i.in_flight);
                let cancelled = outbox.cancel(name, &t.fingerprint);
                let told = outbox
                    .sent(name, &t.fingerprint)
                    .is_some_and(|s| s.state == "firing");
                if told || in_flight {
                    let note = self.resolved_note(t, now);
                    outbox.enqueue(name, note, now);
                    queued = true;
                } else if cancelled {
                    tracing::info!(rule = %t.rule, notifier = name, "alert resolved before its firing message was delivered; neither is sent");
                }
            }
        }
        for i in eval.instances().filter(|i| i.state == AlertState::Firing) {
            if silenced(&silences, i, now) {
                continue;
            }
            let targets = eval
                .rule(&i.rule)
                .map(|r| r.notify.clone())
                .unwrap_or_default();
            for n in notifiers.iter() {
                let name = n.name();
                if !targets.is_empty() && !targets.iter().any(|t| t == name) {
                    continue;
                }
                if outbox.queued(name, &i.fingerprint).is_some() {
                    continue;
                }
                let since = rfc3339(i.active_at);
                let every = i64::try_from(n.repeat_every(repeat).as_nanos()).unwrap_or(i64::MAX);
                let repeat_no = match outbox.sent(name, &i.fingerprint) {
                    Some(s) if s.state == "firing" && s.since == since => {
                        if now - s.at < every {
                            continue;
                        }
                        s.repeat + 1
                    }
                    _ => 0,
                };
                let note = self.firing_note(i, repeat_no);
                outbox.enqueue(name, note, now);
                queued = true;
            }
        }
        drop(outbox);
        drop(eval);
        if queued {
            self.shared.wake.notify_one();
        }
    }

    fn link(&self, query: &str, group: &BTreeMap<String, String>, since: i64) -> String {
        let mut q = if query.is_empty() {
            String::new()
        } else {
            format!("({query})")
        };
        for (k, v) in group {
            let field = k.clone();
            if !q.is_empty() {
                q.push_str(" AND ");
            }
            let escaped = v.replace('\\', "\\\\").replace('"', "\\\"");
            q.push_str(&format!("{field}:\"{escaped}\""));
        }
        format!(
            "{}/api/v1/search?q={}&since={}",
            self.shared.external_url,
            percent_encode(&q),
            percent_encode(&rfc3339(since))
        )
    }

    fn firing_note(&self, i: &Instance, repeat: u32) -> Notification {
        Notification {
            version: "1".into(),
            idempotency_key: format!("{}-{}-firing-{repeat}", i.fingerprint, i.active_at),
            fingerprint: i.fingerprint.clone(),
            rule: i.rule.clone(),
            state: "firing".into(),
            severity: i.severity.clone(),
            group: i.group.clone(),
            labels: i.labels.clone(),
            annotations: i.annotations.clone(),
            value: i.value,
            threshold: i.threshold,
            op: i.op.clone(),
            since: rfc3339(i.active_at),
            ends_at: None,
            query: i.query.clone(),
            link: self.link(&i.query, &i.group, i.active_at - i.window_ns),
            repeat,
        }
    }

    fn resolved_note(&self, t: &Transition, now: i64) -> Notification {
        let mut note = match &t.instance {
            Some(i) => self.firing_note(i, 0),
            None => Notification {
                version: "1".into(),
                idempotency_key: String::new(),
                fingerprint: t.fingerprint.clone(),
                rule: t.rule.clone(),
                state: String::new(),
                severity: String::new(),
                group: t.group.clone(),
                labels: t.group.clone(),
                annotations: BTreeMap::new(),
                value: t.value,
                threshold: t.threshold,
                op: String::new(),
                since: String::new(),
                ends_at: None,
                query: String::new(),
                link: String::new(),
                repeat: 0,
            },
        };
        note.state = "resolved".into();
        note.value = t.value;
        note.ends_at = Some(rfc3339(now));
        note.idempotency_key = format!(
            "{}-{}-resolved",
            t.fingerprint,
            t.instance.as_ref().map_or(now, |i| i.active_at)
        );
        note
    }

    fn persist(&self) {
        let saved = {
            let eval = lock(&self.shared.eval);
            let mut outbox = lock(&self.shared.outbox);
            outbox.dirty = false;
            store::Saved {
                instances: eval.instances().cloned().collect(),
                history: eval.history().cloned().collect(),
                silences: lock(&self.shared.silences).clone(),
                outbox: outbox.clone(),
            }
        };
        if let Err(e) = store::save(&self.shared.state_path, &saved) {
            tracing::warn!(error = %e, "cannot write the alert state; a restart may re-send alerts");
        }
    }
}

/// Percent-encodes a URL query value.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sends due messages until shutdown; at most [`MAX_IN_FLIGHT`] at once.
async fn dispatch(shared: Arc<Shared>, shutdown: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let free = slots.available_permits();
        if free == 0 {
            continue;
        }
        let due = lock(&shared.outbox).due(now_ns(), free);
        if due.is_empty() {
            continue;
        }
        let notifiers = shared
            .notifiers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let max_backoff = i64::try_from(
            shared
                .settings
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .max_backoff
                .0
                .as_nanos(),
        )
        .unwrap_or(i64::MAX);
        for (name, note) in due {
            let Some(n) = notifiers.iter().find(|n| n.name() == name).cloned() else {
                // Its notifier was removed by a reload: the message has nowhere to go.
                let mut o = lock(&shared.outbox);
                if let Some(i) = o.items.get_mut(&(name.clone(), note.fingerprint.clone())) {
                    i.in_flight = false;
                }
                o.cancel(&name, &note.fingerprint);
                continue;
            };
            let permit = slots.clone().acquire_owned().await.expect("never closed");
            let shared = shared.clone();
            tokio::spawn(async move {
                let result = n.send(&note).await;
                match &result {
                    Ok(()) => {
                        tracing::info!(notifier = %name, rule = %note.rule, state = %note.state, "alert notification delivered")
                    }
                    Err(e) => {
                        tracing::warn!(notifier = %name, rule = %note.rule, error = %e, "alert notification failed; retrying with backoff")
                    }
                }
                lock(&shared.outbox).finish(&name, &note, result, now_ns(), max_backoff);
                drop(permit);
            });
        }
    }
}
