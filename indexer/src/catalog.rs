//! The service catalog: which containers of which service run where, in what state, and
//! the recent history of their lifecycle, built from registration events.
//!
//! [`Catalog::apply`] folds one registration into the view; it is idempotent (a history
//! entry is kept once per event id, and a state older than the one held changes only the
//! history), so replays and overlapping scans are harmless. A `snapshot` registration
//! (the containers a collector found running on its node) drops the instances of that node
//! it no longer lists, so a container that vanished while nobody watched does not linger;
//! a registration from before an instance was dropped or removed changes only the history.
//!
//! [`Indexer::start_catalog`](crate::Indexer::start_catalog) keeps one catalog per open
//! index up to date: a thread subscribes to the live broadcast of durable events, rebuilds
//! the view from the index (registrations of the last [`REBUILD_DAYS`] days, so a restart
//! keeps the catalog), then applies every fresh registration. When it lags behind the
//! broadcast it rescans the index. Nothing is persisted beyond the index itself.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, RwLock, Weak};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use shiplog_core::query::{KeywordField, Query};
use shiplog_core::{Event, EventId, Kind, Port, RegistrationState, Timestamp};
use tokio::sync::broadcast;

use crate::search::{self, MAX_LIMIT, SearchRequest};
use crate::store::Store;

/// History entries kept per service; older ones are forgotten first.
pub const MAX_HISTORY: usize = 1000;
/// Services kept; past this, services without instances are forgotten, oldest first.
pub const MAX_SERVICES: usize = 10_000;
/// How far back the rebuild at start reads registrations.
pub const REBUILD_DAYS: i64 = 7;
/// Most registrations a rebuild reads (the newest ones).
pub const MAX_REBUILD_EVENTS: usize = 200_000;
/// Containers whose end (removal, or a snapshot not listing them) is remembered, so that
/// older registrations of theirs arriving late do not list them again. Late means seconds
/// (a replay, a commit not yet searchable): a few thousand cover a busy host.
pub const MAX_ENDED: usize = 10_000;
/// Wait before a second rebuild pass, which picks up events acknowledged before the
/// subscription but committed (searchable) only after the first pass.
const SETTLE: Duration = Duration::from_secs(2);

/// One container of a service, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    /// Full container id.
    pub container_id: String,
    /// Container name.
    pub container_name: String,
    /// Node it runs on.
    pub node: String,
    /// Image reference.
    pub image: String,
    /// Lifecycle state: `started`, `paused`, `died`, `stopped`, ...
    pub state: String,
    /// Health check status (`starting`, `healthy`, `unhealthy`), `null` without one.
    pub health: Option<String>,
    /// Exposed and published ports.
    pub ports: Vec<Port>,
    /// Service tags.
    pub tags: Vec<String>,
    /// Selected labels.
    pub labels: BTreeMap<String, String>,
    /// When it entered its current state.
    pub since: Timestamp,
    /// Time of the newest registration applied (orders late arrivals).
    #[serde(skip)]
    pub updated: Timestamp,
}

/// One lifecycle change in a service's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// When it happened.
    pub ts: Timestamp,
    /// Full container id.
    pub container_id: String,
    /// Container name.
    pub container_name: String,
    /// Node.
    pub node: String,
    /// The new state.
    pub state: RegistrationState,
    /// Exit code, for `died`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// The registration's id.
    #[serde(skip)]
    pub id: EventId,
}

/// A service and its instances.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceView {
    /// Service name.
    pub name: String,
    /// Its containers, by node then name.
    pub instances: Vec<Instance>,
}

/// A service with its recent history, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceDetail {
    /// Service name.
    pub name: String,
    /// Its containers, by node then name.
    pub instances: Vec<Instance>,
    /// Lifecycle changes, newest first, at most [`MAX_HISTORY`].
    pub history: Vec<Transition>,
}

#[derive(Debug, Default)]
struct ServiceEntry {
    instances: BTreeMap<String, Instance>,
    /// Oldest first.
    history: VecDeque<Transition>,
    last_ts: Timestamp,
}

#[derive(Debug, Default)]
struct State {
    services: BTreeMap<String, ServiceEntry>,
    /// Container id → the service holding its instance.
    containers: HashMap<String, String>,
    /// Containers whose instance was removed, and when.
    ended: Ended,
}

/// When the instances of containers were removed (by a `removed` registration or a
/// snapshot), at most [`MAX_ENDED`], the oldest forgotten first. Without it, a registration
/// from before the removal, arriving after it, would list the container again: a collector
/// replays the engine's last second of events after its listing, and a rebuild reads the
/// index, which holds acknowledged events only once they are committed.
#[derive(Debug, Default)]
struct Ended {
    at: HashMap<String, Timestamp>,
    /// Insertion order, with the time inserted (a later insert of the same id supersedes).
    order: VecDeque<(String, Timestamp)>,
}

impl Ended {
    fn insert(&mut self, id: &str, ts: Timestamp) {
        let at = self.at.entry(id.to_string()).or_insert(ts);
        *at = (*at).max(ts);
        self.order.push_back((id.to_string(), *at));
        while self.at.len() > MAX_ENDED || self.order.len() > 2 * MAX_ENDED {
            let Some((old, ts)) = self.order.pop_front() else {
                break;
            };
            if self.at.get(&old) == Some(&ts) {
                self.at.remove(&old);
            }
        }
    }

    /// Whether the container's instance was removed at or after `ts`.
    fn covers(&self, id: &str, ts: Timestamp) -> bool {
        self.at.get(id).is_some_and(|&end| ts <= end)
    }
}

/// The current view of services, instances and their history.
#[derive(Debug, Default)]
pub struct Catalog {
    state: RwLock<State>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Catalog::default()
    }

    /// Every service with at least one instance, by name.
    pub fn services(&self) -> Vec<ServiceView> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state
            .services
            .iter()
            .filter(|(_, entry)| !entry.instances.is_empty())
            .map(|(name, entry)| ServiceView {
                name: name.clone(),
                instances: sorted_instances(entry),
            })
            .collect()
    }

    /// One service with its history; `None` when the catalog never saw it.
    pub fn service(&self, name: &str) -> Option<ServiceDetail> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let entry = state.services.get(name)?;
        Some(ServiceDetail {
            name: name.to_string(),
            instances: sorted_instances(entry),
            history: entry.history.iter().rev().cloned().collect(),
        })
    }

    /// Folds one event into the view; anything but a registration is ignored.
    pub fn apply(&self, event: &Event) {
        if event.kind != Kind::Registration {
            return;
        }
        let Some(state) = event.state else {
            return;
        };
        let mut guard = self.state.write().unwrap_or_else(|e| e.into_inner());
        if state == RegistrationState::Snapshot {
            guard.drop_ghosts(event);
        } else if !event.container_id.is_empty() {
            guard.register(event, state);
        }
    }
}

fn sorted_instances(entry: &ServiceEntry) -> Vec<Instance> {
    let mut instances: Vec<Instance> = entry.instances.values().cloned().collect();
    instances.sort_by(|a, b| {
        (&a.node, &a.container_name, &a.container_id).cmp(&(
            &b.node,
            &b.container_name,
            &b.container_id,
        ))
    });
    instances
}

/// States after which a container is (still) running.
fn is_live(state: &str) -> bool {
    matches!(state, "started" | "paused")
}

impl State {
    fn register(&mut self, event: &Event, state: RegistrationState) {
        use RegistrationState as S;
        let service = if event.service.is_empty() {
            event.container_name.clone()
        } else {
            event.service.clone()
        };
        let id = &event.container_id;
        // A container keeps its service; should a registration say otherwise, it moves.
        if let Some(old) = self
            .containers
            .get(id)
            .filter(|old| **old != service)
            .cloned()
            && let Some(entry) = self.services.get_mut(&old)
        {
            entry.instances.remove(id);
        }
        if !self.services.contains_key(&service) {
            self.make_room();
        }
        let entry = self.services.entry(service.clone()).or_default();
        entry.last_ts = entry.last_ts.max(event.ts);
        push_history(entry, event, state);

        let current = entry.instances.get(id);
        if current.is_some_and(|i| event.ts < i.updated) {
            return; // a late arrival: history only
        }
        if current.is_none() && self.ended.covers(id, event.ts) {
            return; // from before its instance was removed: history only
        }
        if state == S::Removed {
            entry.instances.remove(id);
            self.containers.remove(id);
            self.ended.insert(id, event.ts);
            return;
        }
        let health_field = event
            .fields
            .get("health")
            .and_then(Value::as_str)
            .map(str::to_string);
        let (new_state, health) = match (state, current) {
            (S::Started | S::Restarted | S::Unpaused, _) => ("started".to_string(), health_field),
            (S::Healthy | S::Unhealthy, Some(i)) => (i.state.clone(), Some(state.to_string())),
            (S::Healthy | S::Unhealthy, None) => ("started".into(), Some(state.to_string())),
            (S::Paused, _) => ("paused".into(), current.and_then(|i| i.health.clone())),
            (S::Died | S::Stopped, _) => (state.to_string(), None),
            // A signal or an OOM kill does not by itself end the container: `died` follows.
            (S::Killed | S::Oom, Some(i)) => (i.state.clone(), i.health.clone()),
            (S::Killed | S::Oom, None) => ("started".into(), health_field),
            (S::Removed | S::Snapshot, _) => return,
        };
        let since = match current {
            Some(i) if i.state == new_state => i.since,
            _ => event.ts,
        };
        let keep = |new: &Vec<Port>, old: Option<&Vec<Port>>| {
            if new.is_empty() {
                old.cloned().unwrap_or_default()
            } else {
                new.clone()
            }
        };
        let instance = Instance {
            container_id: id.clone(),
            container_name: event.container_name.clone(),
            node: event.node.clone(),
            image: event.image.clone(),
            state: new_state,
            health,
            ports: keep(&event.ports, current.map(|i| &i.ports)),
            tags: event.tags.clone(),
            labels: event.labels.clone(),
            since,
            updated: event.ts,
        };
        entry.instances.insert(id.clone(), instance);
        self.containers.insert(id.clone(), service);
    }

    /// Applies a snapshot marker: instances of its node updated before it that it does
    /// not list as running (or, for stopped ones, as existing) are dropped.
    fn drop_ghosts(&mut self, marker: &Event) {
        let ids = |key: &str| -> Option<HashSet<String>> {
            marker.fields.get(key)?.as_array().map(|list| {
                list.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
        };
        let Some(running) = ids("containers") else {
            return;
        };
        let existing = ids("existing");
        let mut gone = Vec::new();
        for entry in self.services.values_mut() {
            entry.instances.retain(|id, instance| {
                if instance.node != marker.node || instance.updated > marker.ts {
                    return true;
                }
                let ghost = if running.contains(id) {
                    false
                } else if is_live(&instance.state) {
                    true
                } else {
                    existing.as_ref().is_some_and(|e| !e.contains(id))
                };
                if ghost {
                    gone.push(id.clone());
                }
                !ghost
            });
        }
        for id in gone {
            self.containers.remove(&id);
            self.ended.insert(&id, marker.ts);
        }
    }

    /// Forgets the oldest services without instances while there are too many.
    fn make_room(&mut self) {
        while self.services.len() >= MAX_SERVICES {
            let victim = self
                .services
                .iter()
                .filter(|(_, e)| e.instances.is_empty())
                .min_by_key(|(_, e)| e.last_ts)
                .map(|(name, _)| name.clone());
            match victim {
                Some(name) => {
                    self.services.remove(&name);
                }
                None => return,
            }
        }
    }
}

/// Adds a transition in time order, once per event id, keeping at most [`MAX_HISTORY`].
fn push_history(entry: &mut ServiceEntry, event: &Event, state: RegistrationState) {
    if entry.history.iter().any(|t| t.id == event.id) {
        return;
    }
    let transition = Transition {
        ts: event.ts,
        container_id: event.container_id.clone(),
        container_name: event.container_name.clone(),
        node: event.node.clone(),
        state,
        exit_code: event.exit_code,
        id: event.id,
    };
    let at = entry.history.partition_point(|t| t.ts <= event.ts);
    entry.history.insert(at, transition);
    while entry.history.len() > MAX_HISTORY {
        entry.history.pop_front();
    }
}

/// The catalogs of open stores, so every caller of `start_catalog` on one indexer shares
/// one catalog and one follower thread.
static RUNNING: LazyLock<Mutex<Vec<Running>>> = LazyLock::new(|| Mutex::new(Vec::new()));

/// A store and the catalog kept for it.
type Running = (Weak<Store>, Weak<Catalog>);

/// The catalog of `store`, started by `start` when there is none yet.
pub(crate) fn shared(store: &Arc<Store>, start: impl FnOnce() -> Arc<Catalog>) -> Arc<Catalog> {
    let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    running.retain(|(s, c)| s.strong_count() > 0 && c.strong_count() > 0);
    let found = running
        .iter()
        .find(|(s, _)| std::ptr::eq(s.as_ptr(), Arc::as_ptr(store)))
        .and_then(|(_, c)| c.upgrade());
    if let Some(catalog) = found {
        return catalog;
    }
    let catalog = start();
    running.push((Arc::downgrade(store), Arc::downgrade(&catalog)));
    catalog
}

/// Starts the thread that keeps `catalog` current: rebuild from `store`, then follow `rx`
/// until the indexer closes its broadcast.
pub(crate) fn spawn_follower(
    catalog: Arc<Catalog>,
    store: Arc<Store>,
    mut rx: broadcast::Receiver<Arc<Event>>,
) {
    let spawned = std::thread::Builder::new()
        .name("shiplog-catalog".into())
        .spawn(move || {
            rebuild(&catalog, &store);
            // Apply fresh events at once while waiting for the second pass.
            let settle = std::time::Instant::now() + SETTLE;
            while std::time::Instant::now() < settle {
                match rx.try_recv() {
                    Ok(event) => catalog.apply(&event),
                    // The second pass reads what was missed.
                    Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                    Err(broadcast::error::TryRecvError::Empty) => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(broadcast::error::TryRecvError::Closed) => return,
                }
            }
            rebuild(&catalog, &store);
            loop {
                match rx.blocking_recv() {
                    Ok(event) => catalog.apply(&event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(
                            missed,
                            "catalog fell behind the live events; rescanning the index"
                        );
                        std::thread::sleep(SETTLE);
                        rebuild(&catalog, &store);
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(error = %error, "cannot start the catalog thread; /api/v1/services stays empty");
    }
}

/// Applies the registrations stored in the last [`REBUILD_DAYS`] days, oldest first.
pub fn rebuild(catalog: &Catalog, store: &Store) {
    let now = Timestamp::now();
    let mut request = SearchRequest {
        query: Query::Keyword {
            field: KeywordField::Kind,
            value: Kind::Registration.as_str().to_string(),
        },
        since: Some(now.offset(-REBUILD_DAYS * 86_400 * 1_000_000_000)),
        until: None,
        limit: MAX_LIMIT,
        cursor: None,
    };
    let mut events = Vec::new();
    loop {
        let page = match search::search(store, &request) {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(error = %error, "cannot read registrations for the catalog");
                break;
            }
        };
        events.extend(page.hits);
        if events.len() >= MAX_REBUILD_EVENTS {
            tracing::warn!(
                read = events.len(),
                "catalog rebuilt from the newest {MAX_REBUILD_EVENTS} registrations only"
            );
            break;
        }
        match page.next_cursor {
            Some(cursor) => request.cursor = Some(cursor),
            None => break,
        }
    }
    for event in events.iter().rev() {
        catalog.apply(event);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn reg(node: &str, container: &str, state: RegistrationState, ts: i64) -> Event {
        let mut e = Event {
            kind: Kind::Registration,
            ts: Timestamp(ts),
            node: node.into(),
            container_id: container.into(),
            container_name: format!("{container}-name"),
            image: "img".into(),
            service: "web".into(),
            state: Some(state),
            ports: vec![Port {
                private: 80,
                public: Some(8080),
                proto: "tcp".into(),
                host_ip: Some("0.0.0.0".into()),
            }],
            tags: vec!["a".into()],
            ..Event::default()
        };
        e.id = EventId::for_source(node, container, state.as_str(), Timestamp(ts), 0);
        e
    }

    fn marker(node: &str, ts: i64, running: &[&str], existing: &[&str]) -> Event {
        let mut e = reg(node, "", RegistrationState::Snapshot, ts);
        e.container_name.clear();
        e.fields.insert("containers".into(), json!(running));
        e.fields.insert("existing".into(), json!(existing));
        e
    }

    fn states(catalog: &Catalog) -> Vec<(String, String, Option<String>)> {
        catalog
            .services()
            .into_iter()
            .flat_map(|s| s.instances)
            .map(|i| (i.container_id, i.state, i.health))
            .collect()
    }

    #[test]
    fn follows_a_container_through_its_lifecycle() {
        use RegistrationState as S;
        let catalog = Catalog::new();
        catalog.apply(&reg("n1", "c1", S::Started, 10));
        assert_eq!(states(&catalog), [("c1".into(), "started".into(), None)]);
        catalog.apply(&reg("n1", "c1", S::Healthy, 20));
        assert_eq!(
            states(&catalog),
            [("c1".into(), "started".into(), Some("healthy".into()))]
        );
        let instance = &catalog.services()[0].instances[0];
        assert_eq!(instance.since, Timestamp(10), "health does not reset since");
        assert_eq!(instance.ports[0].public, Some(8080));

        let mut died = reg("n1", "c1", S::Died, 30);
        died.exit_code = Some(137);
        died.ports.clear();
        catalog.apply(&died);
        catalog.apply(&died); // a replay changes nothing
        assert_eq!(states(&catalog), [("c1".into(), "died".into(), None)]);
        assert_eq!(
            catalog.services()[0].instances[0].ports.len(),
            1,
            "ports kept"
        );
        // A late arrival from before the death changes only the history.
        catalog.apply(&reg("n1", "c1", S::Unhealthy, 25));
        assert_eq!(states(&catalog), [("c1".into(), "died".into(), None)]);

        catalog.apply(&reg("n1", "c1", S::Removed, 40));
        assert!(catalog.services().is_empty(), "no instance left");
        let detail = catalog.service("web").unwrap();
        assert!(detail.instances.is_empty());
        let history: Vec<(i64, &str)> = detail
            .history
            .iter()
            .map(|t| (t.ts.as_nanos(), t.state.as_str()))
            .collect();
        assert_eq!(
            history,
            [
                (40, "removed"),
                (30, "died"),
                (25, "unhealthy"),
                (20, "healthy"),
                (10, "started")
            ]
        );
        assert_eq!(detail.history[1].exit_code, Some(137));
        assert!(catalog.service("nope").is_none());
        // Logs and metrics are not registrations.
        catalog.apply(&Event::log(Timestamp(50), "x"));
        assert_eq!(catalog.service("web").unwrap().history.len(), 5);
    }

    #[test]
    fn a_renamed_container_moves_to_its_new_service_under_its_new_name() {
        use RegistrationState as S;
        let catalog = Catalog::new();
        let mut started = reg("n1", "c1", S::Started, 10);
        started.service = "old-name".into();
        started.container_name = "old-name".into();
        catalog.apply(&started);
        // What the collector sends on `docker rename`: the current state, new name and
        // service, later time.
        let mut renamed = reg("n1", "c1", S::Started, 20);
        renamed.service = "new-name".into();
        renamed.container_name = "new-name".into();
        renamed
            .fields
            .insert("renamed_from".into(), json!("old-name"));
        catalog.apply(&renamed);
        let services = catalog.services();
        assert_eq!(services.len(), 1, "the old service keeps no instance");
        assert_eq!(services[0].name, "new-name");
        assert_eq!(services[0].instances[0].container_name, "new-name");
        assert_eq!(services[0].instances[0].state, "started");
        assert!(catalog.service("old-name").unwrap().instances.is_empty());
    }

    #[test]
    fn a_snapshot_drops_ghosts_of_its_own_node_only() {
        use RegistrationState as S;
        let catalog = Catalog::new();
        catalog.apply(&reg("n1", "keep", S::Started, 10));
        catalog.apply(&reg("n1", "ghost", S::Started, 10));
        catalog.apply(&reg("n1", "exited", S::Died, 10));
        catalog.apply(&reg("n1", "gone", S::Died, 10));
        catalog.apply(&reg("n2", "other", S::Started, 10));
        catalog.apply(&reg("n1", "newer", S::Started, 200));
        catalog.apply(&marker("n1", 100, &["keep"], &["keep", "exited"]));
        let mut ids: Vec<String> = states(&catalog).into_iter().map(|s| s.0).collect();
        ids.sort();
        assert_eq!(
            ids,
            ["exited", "keep", "newer", "other"],
            "ghost (not running) and gone (not existing) dropped; n2 and later ones kept"
        );
        // A marker without an existing list drops running ghosts, keeps stopped ones.
        let mut e = marker("n1", 300, &[], &[]);
        e.fields.remove("existing");
        catalog.apply(&e);
        let ids: Vec<String> = states(&catalog).into_iter().map(|s| s.0).collect();
        assert_eq!(ids, ["exited", "other"]);
        catalog.apply(&marker("n1", 400, &[], &[]));
        let ids: Vec<String> = states(&catalog).into_iter().map(|s| s.0).collect();
        assert_eq!(ids, ["other"]);
    }

    #[test]
    fn a_rebuild_over_the_live_view_does_not_bring_a_removed_container_back() {
        use RegistrationState as S;
        let catalog = Catalog::new();
        catalog.apply(&reg("n1", "c1", S::Started, 10));
        catalog.apply(&reg("n1", "c1", S::Removed, 40));
        // A rebuild reads the index, which may not hold the removal yet (it is broadcast
        // after the WAL fsync, searchable only after the next commit).
        catalog.apply(&reg("n1", "c1", S::Started, 10));
        catalog.apply(&reg("n1", "c1", S::Died, 30));
        assert!(states(&catalog).is_empty(), "{:?}", states(&catalog));
        let history: Vec<&str> = catalog
            .service("web")
            .unwrap()
            .history
            .iter()
            .map(|t| t.state.as_str())
            .collect();
        assert_eq!(history, ["removed", "died", "started"]);
    }

    #[test]
    fn events_replayed_after_a_snapshot_do_not_bring_its_ghosts_back() {
        use RegistrationState as S;
        let catalog = Catalog::new();
        catalog.apply(&reg("n1", "gone", S::Started, 10));
        catalog.apply(&reg("n1", "stopped", S::Started, 10));
        // A restarted collector lists first, then replays the engine's last second of
        // events, older than its listing.
        catalog.apply(&marker("n1", 100, &[], &["stopped"]));
        catalog.apply(&reg("n1", "gone", S::Killed, 50));
        catalog.apply(&reg("n1", "stopped", S::Killed, 60));
        assert!(states(&catalog).is_empty(), "{:?}", states(&catalog));
        // Started again after the listing: listed again.
        catalog.apply(&reg("n1", "stopped", S::Started, 150));
        assert_eq!(
            states(&catalog),
            [("stopped".into(), "started".into(), None)]
        );
    }

    #[test]
    fn the_memory_of_removed_containers_is_bounded() {
        let mut ended = Ended::default();
        for i in 0..(MAX_ENDED + 10) {
            ended.insert(&format!("c{i}"), Timestamp(i as i64));
        }
        ended.insert("c20", Timestamp(5_000_000));
        assert_eq!(ended.at.len(), MAX_ENDED);
        assert!(
            !ended.covers("c0", Timestamp(0)),
            "the oldest are forgotten"
        );
        assert!(ended.covers(&format!("c{}", MAX_ENDED + 9), Timestamp(0)));
        assert!(
            ended.covers("c20", Timestamp(4_999_999)),
            "the later time is kept"
        );
        assert!(!ended.covers("c20", Timestamp(5_000_001)));
    }

    #[test]
    fn history_is_bounded_and_services_without_instances_make_room() {
        let catalog = Catalog::new();
        for i in 0..(MAX_HISTORY as i64 + 50) {
            let state = if i % 2 == 0 {
                RegistrationState::Started
            } else {
                RegistrationState::Died
            };
            catalog.apply(&reg("n", "c", state, i));
        }
        let detail = catalog.service("web").unwrap();
        assert_eq!(detail.history.len(), MAX_HISTORY);
        assert_eq!(detail.history[0].ts, Timestamp(MAX_HISTORY as i64 + 49));
    }
}
