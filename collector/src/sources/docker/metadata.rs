//! What we know about a container, from `docker inspect`: its name, image, service and
//! whether to read it at all.

use std::collections::{BTreeMap, HashMap};

use bollard::models::ContainerInspectResponse;
use serde_json::{Map, Value};

/// Label naming a swarm service.
const SWARM_SERVICE_LABEL: &str = "com.docker.swarm.service.name";
/// Label naming a compose service.
const COMPOSE_SERVICE_LABEL: &str = "com.docker.compose.service";
/// Label naming a compose project.
const COMPOSE_PROJECT_LABEL: &str = "com.docker.compose.project";
/// Labels copied into every event's `fields`, and the field names they get: compose, swarm
/// and Kubernetes (dockershim / cri-dockerd) placement, for filtering by where a line ran.
const FIELD_LABELS: [(&str, &str); 10] = [
    (COMPOSE_PROJECT_LABEL, "compose_project"),
    (COMPOSE_SERVICE_LABEL, "compose_service"),
    (SWARM_SERVICE_LABEL, "swarm_service"),
    ("com.docker.swarm.service.id", "swarm_service_id"),
    ("com.docker.swarm.task.name", "swarm_task"),
    ("com.docker.swarm.task.id", "swarm_task_id"),
    ("com.docker.swarm.node.id", "swarm_node_id"),
    ("io.kubernetes.pod.name", "k8s_pod"),
    ("io.kubernetes.pod.namespace", "k8s_namespace"),
    ("io.kubernetes.container.name", "k8s_container"),
];
/// LogSpout's opt-out: a container with `LOGSPOUT=ignore` in its environment is skipped, so
/// users moving from LogSpout keep their opt-outs.
const LOGSPOUT_ENV: &str = "LOGSPOUT";
/// Environment variable (or label) naming a service, Registrator style.
const SERVICE_NAME_KEY: &str = "SERVICE_NAME";
/// Label that keeps a container's logs out of shiplog.
pub const EXCLUDE_LABEL: &str = "shiplog.exclude";
/// The opt-out reason of a container with `LOGSPOUT=ignore` (its logs only are skipped).
pub const LOGSPOUT_REASON: &str = "environment LOGSPOUT=ignore";

/// The container facts stamped on each of its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMeta {
    /// Full container id.
    pub id: String,
    /// Name without Docker's leading `/`.
    pub name: String,
    /// Image reference as the container was created with (`Config.Image`).
    pub image: String,
    /// Logical service, see [`resolve_service`].
    pub service: String,
    /// Whether the container has a TTY (its output is one stream).
    pub tty: bool,
    /// Why the container asked not to be collected ([`EXCLUDE_LABEL`], `LOGSPOUT=ignore`),
    /// if it did.
    pub opted_out: Option<&'static str>,
    /// All its labels, for include rules.
    pub labels: BTreeMap<String, String>,
    /// Labels copied into every event's `fields` (see `FIELD_LABELS`).
    pub fields: Map<String, Value>,
}

impl ContainerMeta {
    /// Reads the facts out of an inspect answer; `None` when it carries no id.
    pub fn from_inspect(inspect: &ContainerInspectResponse) -> Option<Self> {
        let id = inspect.id.clone()?;
        let name = inspect
            .name
            .as_deref()
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_else(|| id.chars().take(12).collect());
        let config = inspect.config.as_ref();
        let empty_labels = HashMap::new();
        let labels = config
            .and_then(|c| c.labels.as_ref())
            .unwrap_or(&empty_labels);
        let env = config.and_then(|c| c.env.as_deref()).unwrap_or_default();
        let image = config
            .and_then(|c| c.image.clone())
            .or_else(|| inspect.image.clone())
            .unwrap_or_default();
        let mut fields = Map::new();
        for (label, field) in FIELD_LABELS {
            if let Some(value) = labels.get(label).filter(|v| !v.is_empty()) {
                fields.insert(field.into(), Value::String(value.clone()));
            }
        }
        let opted_out = if is_excluded(labels) {
            Some("label shiplog.exclude=true")
        } else if logspout_ignored(env) {
            Some(LOGSPOUT_REASON)
        } else {
            None
        };
        Some(ContainerMeta {
            service: resolve_service(labels, env, &name),
            tty: config.and_then(|c| c.tty).unwrap_or(false),
            opted_out,
            labels: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            id,
            name,
            image,
            fields,
        })
    }
}

/// The service a container belongs to: the swarm service label, else the compose service
/// label, else `SERVICE_NAME` from the environment, else a `SERVICE_NAME` label, else the
/// container name. Empty values are skipped.
pub fn resolve_service(labels: &HashMap<String, String>, env: &[String], name: &str) -> String {
    let label = |key: &str| {
        labels
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let from_env = env.iter().find_map(|entry| {
        entry
            .strip_prefix(SERVICE_NAME_KEY)
            .and_then(|rest| rest.strip_prefix('='))
            .filter(|v| !v.is_empty())
    });
    label(SWARM_SERVICE_LABEL)
        .or_else(|| label(COMPOSE_SERVICE_LABEL))
        .or(from_env)
        .or_else(|| label(SERVICE_NAME_KEY))
        .unwrap_or(name)
        .to_string()
}

/// Whether the labels ask shiplog to leave the container alone (`shiplog.exclude=true`).
pub fn is_excluded(labels: &HashMap<String, String>) -> bool {
    labels
        .get(EXCLUDE_LABEL)
        .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

/// Whether the environment holds LogSpout's opt-out, `LOGSPOUT=ignore`.
pub fn logspout_ignored(env: &[String]) -> bool {
    env.iter().any(|entry| {
        entry
            .strip_prefix(LOGSPOUT_ENV)
            .and_then(|rest| rest.strip_prefix('='))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("ignore"))
    })
}

#[cfg(test)]
mod tests {
    use bollard::models::ContainerConfig;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn service_name_resolution_order() {
        let env = vec!["PATH=/bin".to_string(), "SERVICE_NAME=from-env".to_string()];
        let all = labels(&[
            (SWARM_SERVICE_LABEL, "swarm"),
            (COMPOSE_SERVICE_LABEL, "compose"),
            (SERVICE_NAME_KEY, "from-label"),
        ]);
        assert_eq!(resolve_service(&all, &env, "web-1"), "swarm");

        let no_swarm = labels(&[
            (COMPOSE_SERVICE_LABEL, "compose"),
            (SERVICE_NAME_KEY, "from-label"),
        ]);
        assert_eq!(resolve_service(&no_swarm, &env, "web-1"), "compose");

        let only_name_label = labels(&[(SERVICE_NAME_KEY, "from-label")]);
        assert_eq!(resolve_service(&only_name_label, &env, "web-1"), "from-env");
        assert_eq!(
            resolve_service(&only_name_label, &[], "web-1"),
            "from-label"
        );

        let empty = labels(&[(SWARM_SERVICE_LABEL, ""), (COMPOSE_SERVICE_LABEL, "")]);
        let env_empty = vec!["SERVICE_NAME=".to_string(), "SERVICE_NAMES=x".to_string()];
        assert_eq!(resolve_service(&empty, &env_empty, "web-1"), "web-1");
    }

    #[test]
    fn exclusion_label() {
        assert!(is_excluded(&labels(&[(EXCLUDE_LABEL, "true")])));
        assert!(is_excluded(&labels(&[(EXCLUDE_LABEL, "TRUE")])));
        assert!(!is_excluded(&labels(&[(EXCLUDE_LABEL, "false")])));
        assert!(!is_excluded(&labels(&[])));
        assert!(logspout_ignored(&["LOGSPOUT=ignore".to_string()]));
        assert!(!logspout_ignored(&["LOGSPOUT=".to_string()]));
        assert!(!logspout_ignored(&["LOGSPOUTX=ignore".to_string()]));
    }

    #[test]
    fn reads_an_inspect_answer() {
        let inspect = ContainerInspectResponse {
            id: Some("abc123".into()),
            name: Some("/shop-web-1".into()),
            image: Some("sha256:deadbeef".into()),
            config: Some(ContainerConfig {
                image: Some("shop/web:1.2".into()),
                tty: Some(true),
                labels: Some(labels(&[
                    (COMPOSE_SERVICE_LABEL, "web"),
                    (COMPOSE_PROJECT_LABEL, "shop"),
                    ("io.kubernetes.pod.namespace", "prod"),
                    ("com.docker.swarm.task.id", ""),
                ])),
                env: Some(vec!["LOGSPOUT=ignore".into()]),
                ..ContainerConfig::default()
            }),
            ..ContainerInspectResponse::default()
        };
        let meta = ContainerMeta::from_inspect(&inspect).unwrap();
        assert_eq!(meta.name, "shop-web-1");
        assert_eq!(meta.image, "shop/web:1.2");
        assert_eq!(meta.service, "web");
        assert!(meta.tty);
        assert_eq!(meta.opted_out, Some("environment LOGSPOUT=ignore"));
        assert_eq!(meta.fields["compose_project"], "shop");
        assert_eq!(meta.fields["compose_service"], "web");
        assert_eq!(meta.fields["k8s_namespace"], "prod");
        assert!(
            !meta.fields.contains_key("swarm_task_id"),
            "empty labels are skipped"
        );
        assert_eq!(meta.labels["com.docker.compose.service"], "web");
        assert!(ContainerMeta::from_inspect(&ContainerInspectResponse::default()).is_none());
    }
}
