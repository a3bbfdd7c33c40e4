//! The registrar task: turns the engine's container events and listings into registration
//! events, and runs one metrics task per running container.
//!
//! The supervisor hands it every container event and every listing over a bounded channel
//! ([`QUEUE_CAPACITY`]; when it is full the supervisor waits, and the engine keeps the
//! events in its stream meanwhile). Messages are handled one at a time, in order, so the
//! registrations of one container leave in the order the engine reported them.
//!
//! - A `start`, `restart`, `unpause`, `pause` or health event inspects the container (ports
//!   are published only once it runs) and remembers what it found; `die`, `stop`, `kill`
//!   and `oom` use what it remembered; `destroy` uses it one last time and forgets it. A
//!   container that can no longer be inspected is described by the event's attributes.
//! - A listing (at start and after every reconnect) re-registers every running container
//!   and ends with a `snapshot` marker naming them, so a catalog drops containers that went
//!   away while nobody was watching.
//! - Metrics: one [`stats`](super::stats) task per running container, started with it and
//!   stopped when it dies, stops or is removed (or its stats stream ends).
//!
//! What is skipped: containers the operator's filter excludes, containers labelled
//! `shiplog.exclude=true`, and (Registrator's opt-out) containers with `SERVICE_IGNORE`
//! set. `LOGSPOUT=ignore` only concerns logs: such containers are still registered.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::models::EventMessage;
use shiplog_core::{Event, RegistrationState, Timestamp};
use tokio::sync::mpsc;
use tokio::task::{Id as TaskId, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::filter::ContainerFilter;
use super::metadata::LOGSPOUT_REASON;
use super::registration::{ContainerInfo, Transition, event_time, snapshot_marker};
use super::stats;
use crate::error::chain;
use crate::sources::{EventSender, SourceEvent};

/// Capacity of the channel from the supervisor to the registrar, in messages. Full: the
/// supervisor waits (see the module documentation).
pub(super) const QUEUE_CAPACITY: usize = 1024;

/// What the supervisor tells the registrar.
#[derive(Debug)]
pub(super) enum RegistrarMsg {
    /// A container event from the engine.
    Event {
        /// The connection it came over, for inspecting.
        docker: Docker,
        /// The event.
        message: EventMessage,
    },
    /// The engine's containers were listed (at start, after a reconnect).
    Listed {
        /// The connection, for inspecting.
        docker: Docker,
        /// When the listing was taken.
        at: Timestamp,
        /// Ids of containers running (or paused, or restarting).
        running: Vec<String>,
        /// Ids of every container, running or not.
        existing: Vec<String>,
    },
}

/// The registrar's state: what it knows about each container and which are sampled.
pub(super) struct Registrar {
    node: Arc<str>,
    filter: ContainerFilter,
    tx: EventSender,
    shutdown: CancellationToken,
    metrics_interval: Duration,
    /// Containers of this node as last inspected; forgotten when removed.
    known: HashMap<String, ContainerInfo>,
    /// Running metrics tasks: their stop token and task id.
    sampling: HashMap<String, (CancellationToken, TaskId)>,
    tasks: JoinSet<String>,
}

impl Registrar {
    /// A registrar sending to `tx`; `metrics_interval` zero turns metrics off.
    pub(super) fn new(
        node: Arc<str>,
        filter: ContainerFilter,
        tx: EventSender,
        shutdown: CancellationToken,
        metrics_interval: Duration,
    ) -> Self {
        Registrar {
            node,
            filter,
            tx,
            shutdown,
            metrics_interval,
            known: HashMap::new(),
            sampling: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Handles messages until the supervisor hangs up or shutdown, then stops every
    /// metrics task and waits for them.
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<RegistrarMsg>) {
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    if !self.handle(msg).await {
                        break;
                    }
                }
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    if let Ok((task_id, container_id)) = joined
                        && self.sampling.get(&container_id).is_some_and(|(_, t)| *t == task_id)
                    {
                        self.sampling.remove(&container_id);
                    }
                }
                () = self.shutdown.cancelled() => break,
            }
        }
        for (token, _) in self.sampling.values() {
            token.cancel();
        }
        while self.tasks.join_next().await.is_some() {}
        debug!("registrar stopped");
    }

    /// Returns false when the pipeline is closing.
    async fn handle(&mut self, msg: RegistrarMsg) -> bool {
        match msg {
            RegistrarMsg::Event { docker, message } => self.on_event(&docker, &message).await,
            RegistrarMsg::Listed {
                docker,
                at,
                running,
                existing,
            } => self.on_listing(&docker, at, &running, &existing).await,
        }
    }

    async fn on_event(&mut self, docker: &Docker, message: &EventMessage) -> bool {
        if message.action.as_deref() == Some("rename") {
            return self.on_rename(docker, message).await;
        }
        let Some(transition) = Transition::from_event(message) else {
            return true;
        };
        let id = transition.container_id.as_str();
        use RegistrationState as S;
        let info = match transition.state {
            S::Started | S::Restarted | S::Unpaused | S::Paused | S::Healthy | S::Unhealthy => {
                match self.inspect(docker, id).await {
                    Some(info) => Some(info),
                    None => self.known.get(id).cloned(),
                }
            }
            S::Removed => self.known.remove(id),
            _ => match self.known.get(id).cloned() {
                Some(info) => Some(info),
                None => self.inspect(docker, id).await,
            },
        };
        let Some(info) = info.or_else(|| ContainerInfo::from_event(message)) else {
            return true;
        };
        match transition.state {
            S::Started | S::Restarted | S::Unpaused => self.sample(docker, &info),
            S::Died | S::Stopped | S::Removed => self.stop_sampling(id),
            _ => {}
        }
        if self.skips(&info) {
            return true;
        }
        let event = transition.registration(&self.node, &info);
        self.send(event).await
    }

    /// A renamed container: inspected again, its metrics sampled under the new name, and
    /// registered in its current state under the new name (and service, when that follows
    /// the name).
    async fn on_rename(&mut self, docker: &Docker, message: &EventMessage) -> bool {
        let Some(id) = message.actor.as_ref().and_then(|a| a.id.clone()) else {
            return true;
        };
        let Some(info) = self.inspect(docker, &id).await else {
            return true;
        };
        if self.sampling.contains_key(&id) {
            self.stop_sampling(&id);
            self.sample(docker, &info);
        }
        if self.skips(&info) || !info.running {
            return true;
        }
        let old_name = message
            .actor
            .as_ref()
            .and_then(|a| a.attributes.as_ref())
            .and_then(|a| a.get("oldName"))
            .map(String::as_str);
        let event = info.rename_registration(&self.node, event_time(message), old_name);
        self.send(event).await
    }

    async fn on_listing(
        &mut self,
        docker: &Docker,
        at: Timestamp,
        running: &[String],
        existing: &[String],
    ) -> bool {
        let existing_set: HashSet<&String> = existing.iter().collect();
        self.known.retain(|id, _| existing_set.contains(id));
        let running_set: HashSet<&String> = running.iter().collect();
        let stale: Vec<String> = self
            .sampling
            .keys()
            .filter(|id| !running_set.contains(id))
            .cloned()
            .collect();
        for id in stale {
            self.stop_sampling(&id);
        }
        for id in running {
            let Some(info) = self.inspect(docker, id).await else {
                continue;
            };
            if !info.running {
                continue;
            }
            self.sample(docker, &info);
            if self.skips(&info) {
                continue;
            }
            let event = info.snapshot_registration(&self.node, Timestamp::now());
            if !self.send(event).await {
                return false;
            }
        }
        self.send(snapshot_marker(&self.node, at, running, existing))
            .await
    }

    /// Inspects a container and remembers the answer; `None` when it cannot be inspected.
    async fn inspect(&mut self, docker: &Docker, id: &str) -> Option<ContainerInfo> {
        let inspected = tokio::select! {
            inspected = docker.inspect_container(id, None) => inspected,
            () = self.shutdown.cancelled() => return None,
        };
        let info = match inspected {
            Ok(inspect) => ContainerInfo::from_inspect(&inspect)?,
            Err(error) => {
                debug!(container_id = %id, error = %chain(&error), "cannot inspect container for its registration");
                return None;
            }
        };
        self.known.insert(info.meta.id.clone(), info.clone());
        Some(info)
    }

    /// Whether the container is left out of registrations and metrics.
    fn skips(&self, info: &ContainerInfo) -> bool {
        if info.ignored {
            return true;
        }
        let mut meta = info.meta.clone();
        if meta.opted_out == Some(LOGSPOUT_REASON) {
            meta.opted_out = None;
        }
        self.filter.skip_reason(&meta).is_some()
    }

    /// Starts the metrics task of a running container unless one runs or metrics are off.
    fn sample(&mut self, docker: &Docker, info: &ContainerInfo) {
        if self.metrics_interval.is_zero()
            || !info.running
            || self.sampling.contains_key(&info.meta.id)
            || self.skips(info)
        {
            return;
        }
        let stop = self.shutdown.child_token();
        let task = stats::sample_container(
            docker.clone(),
            Arc::clone(&self.node),
            Arc::new(info.meta.clone()),
            self.metrics_interval,
            self.tx.clone(),
            stop.clone(),
        );
        let handle = self.tasks.spawn(task);
        self.sampling
            .insert(info.meta.id.clone(), (stop, handle.id()));
    }

    fn stop_sampling(&mut self, id: &str) {
        if let Some((token, _)) = self.sampling.remove(id) {
            token.cancel();
        }
    }

    /// Sends one event, waiting while the channel is full; false when the pipeline closes.
    async fn send(&self, event: Event) -> bool {
        tokio::select! {
            sent = self.tx.send(SourceEvent::from(event)) => sent.is_ok(),
            () = self.shutdown.cancelled() => false,
        }
    }
}
