//! Registrations, Registrator style: what a container offers (service, ports, tags,
//! labels) and where it is in its lifecycle, as [`Event`]s of kind `registration`.
//!
//! Pure functions from `docker inspect` answers and engine events to events; the task that
//! calls them is the `registrar`. Ids are deterministic from node,
//! container, event time and state, so a replayed engine event (the events stream is
//! re-read from a second before each subscription) is stored once.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerInspectResponse, EventMessage, HealthStatusEnum, PortBinding, PortMap,
};
use serde_json::{Map, Value};
use shiplog_core::{Event, EventId, Kind, Port, RegistrationState, Timestamp};

use super::metadata::ContainerMeta;

/// Environment variable or label with the service's tags, comma separated (Registrator).
pub const SERVICE_TAGS_KEY: &str = "SERVICE_TAGS";
/// Environment variable or label that keeps a container out of the catalog (Registrator).
pub const SERVICE_IGNORE_KEY: &str = "SERVICE_IGNORE";
/// Label prefixes copied into a registration's `labels`: Registrator's `SERVICE_*`
/// attributes, compose, swarm and Kubernetes placement, OCI image annotations (versions,
/// revisions) and our own. Other labels stay out: they can be many and large.
const LABEL_PREFIXES: [&str; 7] = [
    "SERVICE_",
    "com.docker.compose.",
    "com.docker.swarm.",
    "io.kubernetes.",
    "org.opencontainers.image.",
    "org.label-schema.",
    "shiplog.",
];
/// At most this many labels per registration, each value cut at [`MAX_LABEL_BYTES`].
const MAX_LABELS: usize = 64;
/// Longest label value kept, in bytes.
const MAX_LABEL_BYTES: usize = 1024;
/// At most this many tags per registration.
const MAX_TAGS: usize = 64;

/// What a registration says about a container, from `docker inspect`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    /// Id, name, image, service.
    pub meta: ContainerMeta,
    /// Exposed and published ports, sorted.
    pub ports: Vec<Port>,
    /// `SERVICE_TAGS` from the environment, else from a label.
    pub tags: Vec<String>,
    /// The selected labels (see `LABEL_PREFIXES`).
    pub labels: BTreeMap<String, String>,
    /// Whether `SERVICE_IGNORE` is set (to anything but false or 0).
    pub ignored: bool,
    /// The health check's status (`starting`, `healthy`, `unhealthy`), if it has one.
    pub health: Option<String>,
    /// Whether it is running now.
    pub running: bool,
    /// Whether it is paused now.
    pub paused: bool,
    /// When it last started.
    pub started_at: Option<Timestamp>,
}

impl ContainerInfo {
    /// Reads an inspect answer; `None` when it carries no id.
    pub fn from_inspect(inspect: &ContainerInspectResponse) -> Option<Self> {
        let meta = ContainerMeta::from_inspect(inspect)?;
        let config = inspect.config.as_ref();
        let env = config.and_then(|c| c.env.as_deref()).unwrap_or_default();
        let empty = HashMap::new();
        let labels = config.and_then(|c| c.labels.as_ref()).unwrap_or(&empty);
        let exposed = config.and_then(|c| c.exposed_ports.as_deref());
        let published = inspect
            .network_settings
            .as_ref()
            .and_then(|n| n.ports.as_ref());
        let state = inspect.state.as_ref();
        let setting = |key: &str| env_value(env, key).or_else(|| labels.get(key).cloned());
        Some(ContainerInfo {
            ports: parse_ports(exposed.unwrap_or_default(), published),
            tags: setting(SERVICE_TAGS_KEY)
                .map(|t| parse_tags(&t))
                .unwrap_or_default(),
            labels: select_labels(labels),
            ignored: setting(SERVICE_IGNORE_KEY).is_some_and(|v| is_true(&v)),
            health: state
                .and_then(|s| s.health.as_ref())
                .and_then(|h| h.status)
                .filter(|s| !matches!(s, HealthStatusEnum::EMPTY | HealthStatusEnum::NONE))
                .map(|s| s.to_string()),
            running: state.and_then(|s| s.running).unwrap_or(false),
            paused: state.and_then(|s| s.paused).unwrap_or(false),
            started_at: state
                .and_then(|s| s.started_at.as_deref())
                .and_then(|t| Timestamp::parse_rfc3339(t).ok())
                .filter(|t| t.as_secs() > 0),
            meta,
        })
    }

    /// What an engine event's attributes tell about a container that can no longer be
    /// inspected (removed already): name, image, service and labels.
    pub fn from_event(message: &EventMessage) -> Option<Self> {
        let actor = message.actor.as_ref()?;
        let id = actor.id.clone()?;
        let empty = HashMap::new();
        let attributes = actor.attributes.as_ref().unwrap_or(&empty);
        let name = attributes
            .get("name")
            .cloned()
            .unwrap_or_else(|| id.chars().take(12).collect());
        // The attributes are the container's labels plus name, image and event details.
        let inspect = ContainerInspectResponse {
            id: Some(id),
            name: Some(name),
            config: Some(bollard::models::ContainerConfig {
                image: attributes.get("image").cloned(),
                labels: Some(attributes.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut info = ContainerInfo::from_inspect(&inspect)?;
        info.labels.retain(|k, _| k != "name" && k != "image");
        Some(info)
    }

    /// The registration event for this container entering `state` at `ts` on `node`.
    pub fn registration(&self, node: &str, state: RegistrationState, ts: Timestamp) -> Event {
        let meta = &self.meta;
        let mut fields = meta.fields.clone();
        if let Some(health) = &self.health {
            fields.insert("health".into(), Value::String(health.clone()));
        }
        Event {
            id: registration_id(node, &meta.id, state, ts),
            ts,
            received: Some(Timestamp::now()),
            kind: Kind::Registration,
            node: node.to_string(),
            container_id: meta.id.clone(),
            container_name: meta.name.clone(),
            image: meta.image.clone(),
            service: meta.service.clone(),
            message: format!("{} {state}", meta.name),
            fields,
            state: Some(state),
            ports: self.ports.clone(),
            tags: self.tags.clone(),
            labels: self.labels.clone(),
            ..Event::default()
        }
    }

    /// The state a running container is in now: `paused`, else its health (`healthy`,
    /// `unhealthy`), else `started`.
    fn current_state(&self) -> RegistrationState {
        match (self.paused, self.health.as_deref()) {
            (true, _) => RegistrationState::Paused,
            (false, Some("healthy")) => RegistrationState::Healthy,
            (false, Some("unhealthy")) => RegistrationState::Unhealthy,
            (false, _) => RegistrationState::Started,
        }
    }

    /// The registration a listing reports for a running container: its
    /// [current state](Self::current_state), `started` at its start time (so the same
    /// snapshot taken twice is one event).
    pub fn snapshot_registration(&self, node: &str, now: Timestamp) -> Event {
        let state = self.current_state();
        let ts = match state {
            RegistrationState::Started => self.started_at.unwrap_or(now),
            _ => now,
        };
        let mut event = self.registration(node, state, ts);
        event.fields.insert("snapshot".into(), Value::Bool(true));
        event
    }

    /// The registration of a container renamed at `ts` from `old_name` (this info is the
    /// one inspected after the rename): its current state under the new name and service,
    /// with `fields.renamed_from`, so a catalog moves the instance. A new state on the
    /// wire would be refused by indexers that do not know it.
    pub fn rename_registration(&self, node: &str, ts: Timestamp, old_name: Option<&str>) -> Event {
        let mut event = self.registration(node, self.current_state(), ts);
        if let Some(old) = old_name {
            event.fields.insert(
                "renamed_from".into(),
                Value::String(old.trim_start_matches('/').to_string()),
            );
        }
        event
    }
}

/// When an engine event happened, as precisely as the engine says (now when it does not).
pub fn event_time(message: &EventMessage) -> Timestamp {
    match (message.time_nano, message.time) {
        (Some(nanos), _) if nanos > 0 => Timestamp(nanos),
        (_, Some(secs)) if secs > 0 => Timestamp(secs.saturating_mul(1_000_000_000)),
        _ => Timestamp::now(),
    }
}

/// The deterministic id of a registration.
pub fn registration_id(
    node: &str,
    container_id: &str,
    state: RegistrationState,
    ts: Timestamp,
) -> EventId {
    EventId::for_source(node, container_id, state.as_str(), ts, 0)
}

/// The snapshot marker: the containers running on `node` at `ts` (in `fields.containers`)
/// and all that exist there (in `fields.existing`), so a catalog can drop the ones it still
/// holds that are gone.
pub fn snapshot_marker(
    node: &str,
    ts: Timestamp,
    running: &[String],
    existing: &[String],
) -> Event {
    let list = |ids: &[String]| Value::Array(ids.iter().cloned().map(Value::String).collect());
    let mut fields = Map::new();
    fields.insert("containers".into(), list(running));
    fields.insert("existing".into(), list(existing));
    Event {
        id: registration_id(node, "", RegistrationState::Snapshot, ts),
        ts,
        received: Some(Timestamp::now()),
        kind: Kind::Registration,
        node: node.to_string(),
        message: format!("{} containers running on {node}", running.len()),
        fields,
        state: Some(RegistrationState::Snapshot),
        ..Event::default()
    }
}

/// What an engine event means for the catalog: its state, exit code and extra fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Full container id.
    pub container_id: String,
    /// The new state.
    pub state: RegistrationState,
    /// When the engine saw it.
    pub ts: Timestamp,
    /// For `died`: the exit code.
    pub exit_code: Option<i64>,
    /// For `killed`: the signal.
    pub signal: Option<String>,
}

impl Transition {
    /// The transition an engine container event stands for; `None` for events that change
    /// nothing the catalog shows (create, attach, exec, ...).
    pub fn from_event(message: &EventMessage) -> Option<Self> {
        let actor = message.actor.as_ref()?;
        let container_id = actor.id.clone()?;
        let action = message.action.as_deref()?;
        let (verb, detail) = match action.split_once(':') {
            Some((verb, detail)) => (verb.trim(), detail.trim()),
            None => (action.trim(), ""),
        };
        let state = match (verb, detail) {
            ("start", _) => RegistrationState::Started,
            ("die", _) => RegistrationState::Died,
            ("stop", _) => RegistrationState::Stopped,
            ("kill", _) => RegistrationState::Killed,
            ("oom", _) => RegistrationState::Oom,
            ("restart", _) => RegistrationState::Restarted,
            ("pause", _) => RegistrationState::Paused,
            ("unpause", _) => RegistrationState::Unpaused,
            ("destroy", _) => RegistrationState::Removed,
            ("health_status", "healthy") => RegistrationState::Healthy,
            ("health_status", "unhealthy") => RegistrationState::Unhealthy,
            _ => return None,
        };
        let attribute = |key: &str| actor.attributes.as_ref().and_then(|a| a.get(key)).cloned();
        Some(Transition {
            container_id,
            state,
            ts: event_time(message),
            exit_code: (state == RegistrationState::Died)
                .then(|| attribute("exitCode").and_then(|c| c.parse().ok()))
                .flatten(),
            signal: (state == RegistrationState::Killed)
                .then(|| attribute("signal"))
                .flatten(),
        })
    }

    /// The registration event of this transition for a container described by `info`.
    pub fn registration(&self, node: &str, info: &ContainerInfo) -> Event {
        let mut info = info.clone();
        match self.state {
            RegistrationState::Healthy => info.health = Some("healthy".into()),
            RegistrationState::Unhealthy => info.health = Some("unhealthy".into()),
            RegistrationState::Died | RegistrationState::Stopped | RegistrationState::Removed => {
                info.health = None;
            }
            _ => {}
        }
        let mut event = info.registration(node, self.state, self.ts);
        event.exit_code = self.exit_code;
        if let Some(signal) = &self.signal {
            event
                .fields
                .insert("signal".into(), Value::String(signal.clone()));
        }
        if let Some(code) = self.exit_code {
            event.message = format!("{} died with exit code {code}", info.meta.name);
        }
        event
    }
}

/// Ports from `Config.ExposedPorts` (`"8080/tcp"`) and `NetworkSettings.Ports` (bindings):
/// one entry per binding, and one with `public: null` for each exposed port without any.
pub fn parse_ports(exposed: &[String], published: Option<&PortMap>) -> Vec<Port> {
    let mut ports = Vec::new();
    let mut bound = std::collections::HashSet::new();
    if let Some(published) = published {
        for (key, bindings) in published {
            let Some((private, proto)) = parse_port_key(key) else {
                continue;
            };
            let bindings: &[PortBinding] = bindings.as_deref().unwrap_or_default();
            for binding in bindings {
                let public = binding.host_port.as_deref().and_then(|p| p.parse().ok());
                if public.is_none() {
                    continue;
                }
                bound.insert((private, proto.clone()));
                ports.push(Port {
                    private,
                    public,
                    proto: proto.clone(),
                    host_ip: binding.host_ip.clone().filter(|ip| !ip.is_empty()),
                });
            }
        }
    }
    let unbound = published
        .into_iter()
        .flat_map(|p| p.keys())
        .chain(exposed)
        .filter_map(|key| parse_port_key(key));
    for (private, proto) in unbound {
        if bound.insert((private, proto.clone())) {
            ports.push(Port {
                private,
                public: None,
                proto,
                host_ip: None,
            });
        }
    }
    ports.sort();
    ports.dedup();
    ports
}

/// `"8080/tcp"` → `(8080, "tcp")`; a bare `"8080"` is tcp.
fn parse_port_key(key: &str) -> Option<(u16, String)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let port = port.trim().parse().ok()?;
    let proto = proto.trim().to_ascii_lowercase();
    Some((
        port,
        if proto.is_empty() {
            "tcp".into()
        } else {
            proto
        },
    ))
}

/// `"a, b,,c"` → `["a", "b", "c"]`: trimmed, empty entries and repeats dropped, at most
/// `MAX_TAGS`.
pub fn parse_tags(text: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for tag in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if tags.len() == MAX_TAGS {
            break;
        }
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_string());
        }
    }
    tags
}

/// The labels a registration carries (see `LABEL_PREFIXES`), capped.
fn select_labels(labels: &HashMap<String, String>) -> BTreeMap<String, String> {
    let mut selected: Vec<(&String, &String)> = labels
        .iter()
        .filter(|(k, _)| LABEL_PREFIXES.iter().any(|p| k.starts_with(p)))
        .collect();
    selected.sort();
    selected
        .into_iter()
        .take(MAX_LABELS)
        .map(|(k, v)| {
            let mut value = v.clone();
            if value.len() > MAX_LABEL_BYTES {
                let mut cut = MAX_LABEL_BYTES;
                while !value.is_char_boundary(cut) {
                    cut -= 1;
                }
                value.truncate(cut);
            }
            (k.clone(), value)
        })
        .collect()
}

fn env_value(env: &[String], key: &str) -> Option<String> {
    env.iter().find_map(|entry| {
        entry
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('='))
            .map(str::to_string)
    })
}

fn is_true(value: &str) -> bool {
    !matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "" | "false" | "0" | "no"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
        let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn reads_ports_tags_labels_and_health_from_an_inspect_fixture() {
        let inspect: ContainerInspectResponse = fixture("inspect-registration.json");
        let info = ContainerInfo::from_inspect(&inspect).unwrap();
        assert_eq!(info.meta.name, "model-api-1");
        assert_eq!(info.meta.service, "model-api", "SERVICE_NAME from the env");
        assert_eq!(info.tags, ["gpu", "v2"]);
        assert_eq!(info.health.as_deref(), Some("healthy"));
        assert!(info.running && !info.paused && !info.ignored);
        assert_eq!(
            info.started_at,
            Some(Timestamp::parse_rfc3339("2026-11-22T03:09:44.123456789Z").unwrap())
        );
        let port = |private, public, host_ip: Option<&str>| Port {
            private,
            public,
            proto: "tcp".into(),
            host_ip: host_ip.map(str::to_string),
        };
        assert_eq!(
            info.ports,
            [
                port(8080, Some(32768), Some("0.0.0.0")),
                port(8080, Some(32768), Some("::")),
                port(9090, None, None),
                Port {
                    private: 9999,
                    public: None,
                    proto: "udp".into(),
                    host_ip: None
                },
            ]
        );
        assert_eq!(info.labels["org.opencontainers.image.version"], "2.1.0");
        assert_eq!(info.labels["com.docker.compose.project"], "ml");
        assert!(
            !info.labels.contains_key("secret.token"),
            "{:?}",
            info.labels
        );

        let event = info.registration("node-a", RegistrationState::Started, Timestamp(5));
        let v = serde_json::to_value(&event).unwrap();
        assert_eq!(v["kind"], "registration");
        assert_eq!(v["state"], "started");
        assert_eq!(v["service"], "model-api");
        assert_eq!(v["tags"], serde_json::json!(["gpu", "v2"]));
        assert_eq!(v["fields"]["health"], "healthy");
        assert_eq!(v["ports"][0]["public"], 32768);
        assert_eq!(
            event.id,
            info.registration("node-a", RegistrationState::Started, Timestamp(5))
                .id,
            "ids are deterministic"
        );
        assert_ne!(
            event.id,
            info.registration("node-a", RegistrationState::Died, Timestamp(5))
                .id
        );
        let snapshot = info.snapshot_registration("node-a", Timestamp(99));
        assert_eq!(snapshot.state, Some(RegistrationState::Healthy));
        assert_eq!(snapshot.fields["snapshot"], true);
    }

    #[test]
    fn engine_events_become_transitions() {
        let events: Vec<EventMessage> = fixture("docker-events.json");
        let transitions: Vec<Transition> =
            events.iter().filter_map(Transition::from_event).collect();
        let states: Vec<&str> = transitions.iter().map(|t| t.state.as_str()).collect();
        assert_eq!(
            states,
            [
                "started",
                "healthy",
                "killed",
                "died",
                "stopped",
                "unhealthy",
                "removed"
            ],
            "create and exec events are not transitions"
        );
        let died = &transitions[3];
        assert_eq!(died.exit_code, Some(137));
        assert_eq!(died.ts, Timestamp(1_763_780_984_123_456_789));
        assert_eq!(transitions[2].signal.as_deref(), Some("15"));

        // A removed container cannot be inspected: its event's attributes describe it.
        let info = ContainerInfo::from_event(events.last().unwrap()).unwrap();
        assert_eq!(info.meta.name, "model-api-1");
        assert_eq!(info.meta.image, "ml/model-api:2.1");
        assert_eq!(info.meta.service, "model-api", "compose service label");
        assert_eq!(info.tags, ["blue"], "SERVICE_TAGS label");
        let removed = transitions[6].registration("n", &info);
        assert_eq!(removed.state, Some(RegistrationState::Removed));
        assert_eq!(removed.container_name, "model-api-1");
        assert!(!removed.labels.contains_key("name"));

        let died_event = died.registration("n", &info);
        assert_eq!(died_event.exit_code, Some(137));
        assert!(died_event.message.contains("137"), "{}", died_event.message);
    }

    #[test]
    fn ports_and_tags_parsing_edge_cases() {
        assert_eq!(parse_tags(" a, b,,a , c "), ["a", "b", "c"]);
        assert!(parse_tags("").is_empty());
        assert_eq!(parse_tags(&"x,".repeat(200)).len(), 1);
        let many: String = (0..100).map(|i| format!("t{i},")).collect();
        assert_eq!(parse_tags(&many).len(), MAX_TAGS);

        let mut published = PortMap::new();
        published.insert("80/tcp".into(), None);
        published.insert(
            "53/UDP".into(),
            Some(vec![PortBinding {
                host_ip: Some(String::new()),
                host_port: Some("5353".into()),
            }]),
        );
        published.insert("junk".into(), None);
        let ports = parse_ports(&["80/tcp".into(), "443".into()], Some(&published));
        let summary: Vec<(u16, Option<u16>, &str, Option<&str>)> = ports
            .iter()
            .map(|p| (p.private, p.public, p.proto.as_str(), p.host_ip.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                (53, Some(5353), "udp", None),
                (80, None, "tcp", None),
                (443, None, "tcp", None)
            ]
        );
        assert!(parse_ports(&[], None).is_empty());
    }

    #[test]
    fn snapshot_marker_lists_the_running_containers() {
        let marker = snapshot_marker("n", Timestamp(7), &["a".into()], &["a".into(), "b".into()]);
        assert_eq!(marker.state, Some(RegistrationState::Snapshot));
        assert_eq!(marker.fields["containers"], serde_json::json!(["a"]));
        assert_eq!(marker.fields["existing"], serde_json::json!(["a", "b"]));
        assert!(marker.container_id.is_empty());
        assert_eq!(
            marker.id,
            snapshot_marker("n", Timestamp(7), &[], &[]).id,
            "one marker per node and time"
        );
    }
}
