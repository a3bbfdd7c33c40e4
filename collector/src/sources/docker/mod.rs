//! The Docker source: every running container's stdout and stderr, as they are written.
//!
//! A supervisor subscribes to the engine's container events first (start, die, destroy),
//! then lists the running containers and starts one log task per container
//! (the private `follow` module); a `start` event starts another. A container is never
//! followed twice at once; when one starts again, it is read on from the last Docker time
//! shipped. A `rename` stops the container's log task between two reads and starts another
//! from its cursor, so the lines after it carry the new name (and a service named after the
//! container follows it) with none skipped or read twice. If the engine is unreachable or
//! the events stream breaks, the supervisor reconnects with capped backoff and lists again,
//! so nothing started meanwhile is missed.
//!
//! Where a container is read from, first match wins:
//!
//! 1. followed before in this run: after the last event sent (in-memory cursor);
//! 2. a checkpoint from an earlier run (see [`crate::checkpoint`]): after the last line the
//!    sink acknowledged, re-reading from a second before it and dropping what was shipped;
//!    this includes containers that exited meanwhile, whose remaining lines are read once.
//!    A run records where it begins reading each collected container before any line of it
//!    is acknowledged, so a run that dies before an acknowledgement leaves that as the
//!    checkpoint, and the next run does not take the container for one never seen (4);
//! 3. created since about the last time an earlier run was alive (the checkpoint file's
//!    time, less 10 s), running or exited: from its beginning, since that run may have died
//!    before checkpointing it;
//! 4. running when the collector starts: from a second before the start (old history is
//!    not re-read), or from its beginning with
//!    [`with_read_from_head`](DockerSource::with_read_from_head);
//! 5. started later: from its beginning, so a short-lived one that already exited is still
//!    read whole.
//!
//! Checkpoints of containers that no longer exist (destroyed, or missing from the first
//! listing) are removed: their logs are gone with them.
//!
//! Beside the logs, the same events stream and listings feed the registrar (the private
//! `registrar` module): registrations of every lifecycle change ([`registration`]), a
//! snapshot after every listing, and one metrics task per running container ([`stats`]).
//!
//! Modules: [`line`](mod@line) splits frames into lines, [`metadata`] turns `inspect` into
//! names and services, [`filter`] decides which containers are collected, [`record`] turns
//! lines into events, [`identity`] finds our own container, [`registration`] and [`stats`]
//! build registration and metric events.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerSummaryStateEnum, EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder};
use futures_util::StreamExt;
use shiplog_core::Timestamp;
use tokio::task::{Id as TaskId, JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use self::filter::ContainerFilter;
use self::follow::{FollowContext, FollowOutcome, FollowRequest};
use self::identity::OwnContainer;
use self::record::Resume;
use self::registrar::{Registrar, RegistrarMsg};
use crate::backoff::Backoff;
use crate::checkpoint::CheckpointStore;
use crate::error::{Error, Result, chain};
use crate::sources::EventSender;
use crate::transforms::Transforms;

pub mod filter;
mod follow;
pub mod identity;
pub mod line;
mod log_files;
pub mod metadata;
mod raw_logs;
pub mod record;
mod registrar;
pub mod registration;
pub mod rotation;
pub mod stats;

/// First delay before reconnecting to the engine.
const RECONNECT_INITIAL: Duration = Duration::from_secs(1);
/// Longest delay between reconnection attempts.
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// An events stream that lived this long counts as healthy: the next failure starts the
/// backoff from the beginning again.
const HEALTHY_STREAM: Duration = Duration::from_secs(60);
/// Containers running at start are read from this long before the start.
const START_LOOKBACK_NANOS: i64 = 1_000_000_000;
/// A container created this long before an earlier run's last checkpoint write, with no
/// checkpoint, is still read whole: that run may have died before writing one for it.
const PREVIOUS_RUN_SLACK_SECS: i64 = 10;

/// Reads the logs of every container of one Docker engine.
#[derive(Debug)]
pub struct DockerSource {
    host: Option<String>,
    node: Arc<str>,
    own: OwnContainer,
    started: Timestamp,
    filter: ContainerFilter,
    transforms: Transforms,
    checkpoints: Arc<CheckpointStore>,
    metrics_interval: Duration,
    read_from_head: bool,
    socket_logs: bool,
    log_files: bool,
}

impl DockerSource {
    /// A source for the engine at `host` (`None`: bollard's defaults, honouring
    /// `DOCKER_HOST`), stamping events with `node`. Fails only when the host setting itself
    /// is unusable; an engine that does not answer yet is waited for in [`run`](Self::run).
    pub fn new(host: Option<String>, node: &str) -> Result<Self> {
        match connect(host.as_deref()) {
            // A socket that is not there yet is an engine that is not up yet: wait for it.
            Ok(_)
            | Err(Error::DockerHost {
                source: bollard::errors::Error::SocketNotFoundError(_),
                ..
            }) => {}
            Err(error) => return Err(error),
        }
        let own = OwnContainer::detect();
        if let Some(id) = own.id() {
            debug!(container_id = %id, "running in a container; its logs are skipped");
        }
        Ok(DockerSource {
            host,
            node: node.into(),
            own,
            started: Timestamp::now(),
            filter: ContainerFilter::default(),
            transforms: Transforms::default(),
            checkpoints: Arc::new(CheckpointStore::in_memory()),
            metrics_interval: crate::config::DEFAULT_METRICS_INTERVAL,
            read_from_head: false,
            socket_logs: true,
            log_files: true,
        })
    }

    /// Reads logs of containers without a TTY straight from the engine's Unix socket (on by
    /// default; off: through bollard, as with an engine reached over TCP).
    pub fn with_socket_logs(mut self, on: bool) -> Self {
        self.socket_logs = on;
        self
    }

    /// Reads followed `json-file` logs straight from the engine's files, holding each file
    /// open through rotations (on by default, for a local engine whose files are readable
    /// here; off, or where they are not: through the engine's log endpoint).
    pub fn with_log_files(mut self, on: bool) -> Self {
        self.log_files = on;
        self
    }

    /// Reads containers already running at start, that no checkpoint covers, from the
    /// beginning of their stored logs instead of from a second before the start (default
    /// off: installing the collector on a busy host does not re-ship days of history).
    pub fn with_read_from_head(mut self, on: bool) -> Self {
        self.read_from_head = on;
        self
    }

    /// Samples each running container's metrics this often; zero turns metrics off
    /// (default: [`DEFAULT_METRICS_INTERVAL`](crate::config::DEFAULT_METRICS_INTERVAL)).
    pub fn with_metrics_interval(mut self, interval: Duration) -> Self {
        self.metrics_interval = interval;
        self
    }

    /// Collects only the containers `filter` selects (default: all but those that opt out).
    pub fn with_filter(mut self, filter: ContainerFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Applies `transforms` to every container's events (default: multiline only).
    pub fn with_transforms(mut self, transforms: Transforms) -> Self {
        self.transforms = transforms;
        self
    }

    /// Resumes containers from `checkpoints` and forgets those that no longer exist
    /// (default: an empty in-memory store).
    pub fn with_checkpoints(mut self, checkpoints: Arc<CheckpointStore>) -> Self {
        self.checkpoints = checkpoints;
        self
    }

    /// Skips this container instead of the detected one (tests, unusual setups).
    pub fn with_own_container(mut self, own: OwnContainer) -> Self {
        self.own = own;
        self
    }

    /// Follows containers and sends their lines to `tx` until `shutdown` is cancelled, then
    /// waits for every log task to stop.
    pub async fn run(self, tx: EventSender, shutdown: CancellationToken) {
        let host = describe_host(self.host.as_deref());
        let (registrar_tx, registrar_rx) = tokio::sync::mpsc::channel(registrar::QUEUE_CAPACITY);
        let registrar = Registrar::new(
            Arc::clone(&self.node),
            self.filter.clone(),
            tx.clone(),
            shutdown.clone(),
            self.metrics_interval,
        );
        let registering = tokio::spawn(registrar.run(registrar_rx));
        let context = Arc::new(FollowContext {
            node: Arc::clone(&self.node),
            own: self.own.clone(),
            filter: self.filter.clone(),
            transforms: self.transforms.clone(),
            tx,
            socket: raw_logs::socket_path(self.host.as_deref()).filter(|_| self.socket_logs),
            log_files: self.log_files && raw_logs::socket_path(self.host.as_deref()).is_some(),
            checkpoints: Arc::clone(&self.checkpoints),
            shutdown: shutdown.clone(),
        });
        let mut supervisor = Supervisor {
            started: self.started,
            read_from_head: self.read_from_head,
            context,
            tasks: JoinSet::new(),
            task_ids: HashMap::new(),
            following: HashMap::new(),
            cursors: HashMap::new(),
            checkpoints: Arc::clone(&self.checkpoints),
            restart_pending: HashSet::new(),
            destroyed: HashSet::new(),
            registrar: registrar_tx,
        };
        let mut engine = EngineHealth::new(host);
        let mut backoff = Backoff::new(RECONNECT_INITIAL, RECONNECT_MAX);
        let mut listed_once = false;

        'connect: loop {
            let attempt = async {
                let docker = connect(self.host.as_deref())?;
                docker
                    .negotiate_version()
                    .await
                    .map_err(|source| Error::DockerHost {
                        host: engine.host.clone(),
                        source,
                    })
            };
            let docker = tokio::select! {
                docker = attempt => docker,
                () = shutdown.cancelled() => break 'connect,
            };
            match docker {
                Ok(docker) => {
                    let version = docker.client_version().to_string();
                    let connected_at = Instant::now();
                    let ended = supervisor
                        .watch(&docker, &mut engine, &version, &mut listed_once, &shutdown)
                        .await;
                    if ended == Watch::Shutdown {
                        break 'connect;
                    }
                    if connected_at.elapsed() >= HEALTHY_STREAM {
                        backoff.reset();
                    }
                }
                Err(error) => engine.unreachable(&error),
            }
            let delay = backoff.next_delay();
            debug!(retry_in = ?delay, "reconnecting to the docker engine");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => break 'connect,
            }
        }

        // Every log task watches the same token; wait for them to hand back their events.
        while let Some(joined) = supervisor.tasks.join_next_with_id().await {
            supervisor.finished(None, joined);
        }
        // Hanging up ends the registrar once it has handled what it holds.
        drop(supervisor);
        if let Err(error) = registering.await
            && error.is_panic()
        {
            error!(error = %error, "registrar task panicked");
        }
        debug!("docker source stopped");
    }
}

/// How one connection to the engine ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// Shutdown was requested.
    Shutdown,
    /// The events stream or the listing failed: reconnect.
    Lost,
}

/// Why a container is being followed; decides where its log is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Running when the collector started: read from just before the start.
    FirstListing,
    /// Found running after a reconnect, or exited with a checkpoint: read from the
    /// beginning (or from where we left it, if we followed it before or hold a checkpoint).
    Later,
    /// A `start` event: as `Later`, and if it is still followed (the old log has not ended
    /// yet) follow it again once it has.
    Started,
}

/// The supervisor's bookkeeping of log tasks.
struct Supervisor {
    started: Timestamp,
    /// Containers of the first listing without a checkpoint are read whole.
    read_from_head: bool,
    context: Arc<FollowContext>,
    tasks: JoinSet<FollowOutcome>,
    task_ids: HashMap<TaskId, String>,
    /// Containers with a running log task, and what stops that task alone (a rename).
    following: HashMap<String, CancellationToken>,
    /// Per container, after the last event sent: where a restart resumes.
    cursors: HashMap<String, Resume>,
    /// Acknowledged positions, from this run and earlier ones.
    checkpoints: Arc<CheckpointStore>,
    /// Started again while the previous log task was still running.
    restart_pending: HashSet<String>,
    /// Destroyed while its log task was still running: forget it once the task ends.
    destroyed: HashSet<String>,
    /// Where container events and listings go for registrations and metrics.
    registrar: tokio::sync::mpsc::Sender<RegistrarMsg>,
}

impl Supervisor {
    /// Subscribes to events, lists running containers, then handles events and finished
    /// log tasks until the events stream fails or shutdown.
    async fn watch(
        &mut self,
        docker: &Docker,
        engine: &mut EngineHealth,
        version: &str,
        listed_once: &mut bool,
        shutdown: &CancellationToken,
    ) -> Watch {
        // Subscribe first, replaying the last second: a container that starts while we list
        // shows up in one or the other (or both, and is followed once).
        let filters = HashMap::from([
            ("type", vec!["container"]),
            (
                "event",
                vec![
                    "start",
                    "die",
                    "destroy",
                    "stop",
                    "kill",
                    "oom",
                    "restart",
                    "pause",
                    "unpause",
                    "health_status",
                    "rename",
                ],
            ),
        ]);
        let since = (Timestamp::now().as_secs() - 1).to_string();
        let options = EventsOptionsBuilder::default()
            .since(&since)
            .filters(&filters)
            .build();
        let mut events = docker.events(Some(options));

        // All containers, not just running ones: exited ones may hold lines an earlier run did
        // not ship, and the rest tell which checkpoints are stale.
        let list_options = ListContainersOptionsBuilder::default().all(true).build();
        let listed = tokio::select! {
            listed = docker.list_containers(Some(list_options)) => listed,
            () = shutdown.cancelled() => return Watch::Shutdown,
        };
        let containers = match listed {
            Ok(containers) => containers,
            Err(error) => {
                engine.lost(&error, "cannot list containers");
                return Watch::Lost;
            }
        };
        let origin = if *listed_once {
            Origin::Later
        } else {
            Origin::FirstListing
        };
        *listed_once = true;
        let listed_at = Timestamp::now();
        // Containers created since about when an earlier run was last alive, with no
        // checkpoint, may have written (and even exited) while no collector ran: read them
        // whole. What was shipped already comes again with the same ids and is dropped.
        let unseen_since = (origin == Origin::FirstListing)
            .then(|| self.checkpoints.previous_run())
            .flatten()
            .map(|t| t.as_secs() - PREVIOUS_RUN_SLACK_SECS);
        let mut existing = HashSet::new();
        let mut running = 0;
        let mut up = Vec::new();
        for container in containers {
            let Some(id) = container.id else { continue };
            existing.insert(id.clone());
            let unseen = unseen_since.is_some_and(|since| container.created.unwrap_or(0) >= since)
                && !self.cursors.contains_key(&id)
                && self.checkpoints.get(&id).is_none();
            let is_running = matches!(
                container.state,
                Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::RESTARTING)
            );
            if is_running || container.state == Some(ContainerSummaryStateEnum::PAUSED) {
                up.push(id.clone());
            }
            if is_running {
                running += 1;
                self.follow(docker, id, if unseen { Origin::Later } else { origin });
            } else if unseen {
                self.follow(docker, id, Origin::Later);
            } else if !self.cursors.contains_key(&id) && self.checkpoints.get(&id).is_some() {
                // Exited while we were not running: read what is left of it, once.
                self.follow(docker, id, Origin::Later);
            }
        }
        engine.connected(version, running);
        for id in self.checkpoints.container_ids() {
            if !existing.contains(&id) {
                debug!(container_id = %id, "container is gone; dropping its checkpoint");
                self.checkpoints.remove(&id);
            }
        }
        let listed = RegistrarMsg::Listed {
            docker: docker.clone(),
            at: listed_at,
            running: up,
            existing: existing.into_iter().collect(),
        };
        if !self.notify(listed, shutdown).await {
            return Watch::Shutdown;
        }

        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Watch::Shutdown,
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.finished(Some(docker), joined);
                }
                event = events.next() => match event {
                    Some(Ok(message)) => {
                        self.on_event(docker, message.clone());
                        let event = RegistrarMsg::Event { docker: docker.clone(), message };
                        if !self.notify(event, shutdown).await {
                            return Watch::Shutdown;
                        }
                    }
                    Some(Err(error)) => {
                        engine.lost(&error, "docker events stream failed");
                        return Watch::Lost;
                    }
                    None => {
                        engine.lost_quietly("docker events stream ended");
                        return Watch::Lost;
                    }
                },
            }
        }
    }

    /// Hands a message to the registrar, waiting while its queue is full; false on
    /// shutdown. A registrar that is gone (it only stops on shutdown) is not waited for.
    async fn notify(&self, msg: RegistrarMsg, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            _ = self.registrar.send(msg) => true,
            () = shutdown.cancelled() => false,
        }
    }

    fn on_event(&mut self, docker: &Docker, message: EventMessage) {
        if message
            .typ
            .is_some_and(|t| t != EventMessageTypeEnum::CONTAINER)
        {
            return;
        }
        let Some(id) = message.actor.and_then(|actor| actor.id) else {
            return;
        };
        match message.action.as_deref().unwrap_or_default() {
            "start" => self.follow(docker, id, Origin::Started),
            "destroy" => {
                self.restart_pending.remove(&id);
                if self.following.contains_key(&id) {
                    self.destroyed.insert(id);
                } else {
                    self.cursors.remove(&id);
                    self.checkpoints.remove(&id);
                }
            }
            "rename" => {
                // The name (and a service named after it) is read when a log task starts:
                // stop the task between reads and follow on from its cursor, so the next
                // lines carry the new name and none is read twice or skipped.
                if let Some(stop) = self.following.get(&id) {
                    debug!(container_id = %id, "container renamed; following it under its new name");
                    stop.cancel();
                    self.restart_pending.insert(id);
                }
            }
            action => debug!(container_id = %id, action, "container event"),
        }
    }

    /// Starts a log task for `id` unless one is running.
    fn follow(&mut self, docker: &Docker, id: String, origin: Origin) {
        if self.following.contains_key(&id) {
            if origin == Origin::Started {
                self.restart_pending.insert(id);
            }
            return;
        }
        let resume = match (self.cursors.get(&id), self.checkpoints.get(&id)) {
            (Some(&cursor), _) => cursor,
            (None, Some(shipped)) => Resume::after_checkpoint(shipped),
            (None, None) if origin == Origin::FirstListing && !self.read_from_head => {
                Resume::after(self.started.offset(-START_LOOKBACK_NANOS))
            }
            (None, None) => Resume::from_beginning(),
        };
        let request = FollowRequest {
            id: id.clone(),
            resume,
        };
        let stop = self.context.shutdown.child_token();
        let task = follow::follow(
            docker.clone(),
            request,
            Arc::clone(&self.context),
            stop.clone(),
        );
        let handle = self.tasks.spawn(task);
        self.task_ids.insert(handle.id(), id.clone());
        self.following.insert(id, stop);
    }

    /// Books a finished log task, and follows the container again if it restarted.
    fn finished(
        &mut self,
        docker: Option<&Docker>,
        joined: std::result::Result<(TaskId, FollowOutcome), JoinError>,
    ) {
        let (id, cursor) = match joined {
            Ok((task_id, outcome)) => {
                self.task_ids.remove(&task_id);
                (outcome.id, outcome.cursor)
            }
            Err(join_error) => {
                let Some(id) = self.task_ids.remove(&join_error.id()) else {
                    return;
                };
                if join_error.is_panic() {
                    error!(container_id = %id, error = %join_error, "container log task panicked");
                }
                (id, None)
            }
        };
        self.following.remove(&id);
        if self.destroyed.remove(&id) {
            // Its last lines are in the channel already; nothing is left to read after them.
            self.cursors.remove(&id);
            self.checkpoints.remove(&id);
            self.restart_pending.remove(&id);
            return;
        }
        if let Some(cursor) = cursor {
            self.cursors.insert(id.clone(), cursor);
        }
        if self.restart_pending.remove(&id)
            && let Some(docker) = docker
        {
            self.follow(docker, id, Origin::Started);
        }
    }
}

/// Docker's `since` for a time: whole seconds (all API versions accept an integer), rounded
/// down so nothing is skipped.
fn docker_since(ts: Timestamp) -> i32 {
    i32::try_from(ts.as_secs().max(0)).unwrap_or(i32::MAX)
}

/// What the operator has been told about the engine, so an outage is one warning and one
/// recovery message, not a line per retry.
#[derive(Debug)]
struct EngineHealth {
    host: String,
    ever_connected: bool,
    warned: bool,
}

impl EngineHealth {
    fn new(host: String) -> Self {
        EngineHealth {
            host,
            ever_connected: false,
            warned: false,
        }
    }

    fn connected(&mut self, api_version: &str, running: usize) {
        if !self.ever_connected || self.warned {
            info!(host = %self.host, api_version, running, "docker engine reachable at {}", self.host);
        }
        self.ever_connected = true;
        self.warned = false;
    }

    fn unreachable(&mut self, error: &Error) {
        if self.warned {
            debug!(host = %self.host, error = %chain(error), "docker engine still unreachable");
            return;
        }
        self.warned = true;
        warn!(
            host = %self.host,
            error = %chain(error),
            "no Docker engine reachable at {}; retrying in the background",
            self.host
        );
    }

    fn lost(&mut self, error: &bollard::errors::Error, what: &str) {
        if self.warned {
            debug!(error = %chain(error), "{what}");
            return;
        }
        self.warned = true;
        warn!(host = %self.host, error = %chain(error), "{what}; reconnecting in the background");
    }

    fn lost_quietly(&mut self, what: &str) {
        debug!(host = %self.host, "{what}; reconnecting");
    }
}

/// A client for `host`, or bollard's default (`DOCKER_HOST`, else the local socket).
/// Only builds the client: nothing is sent until it is used.
fn connect(host: Option<&str>) -> Result<Docker> {
    let client = match host {
        Some(host) => Docker::connect_with_host(host),
        None => Docker::connect_with_defaults(),
    };
    client.map_err(|source| Error::DockerHost {
        host: describe_host(host),
        source,
    })
}

/// The engine address for messages.
fn describe_host(host: Option<&str>) -> String {
    host.map(str::to_string)
        .or_else(|| std::env::var("DOCKER_HOST").ok())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_since_rounds_down_and_saturates() {
        let ts = Timestamp::parse_rfc3339("2026-11-22T03:09:44.999Z").unwrap();
        assert_eq!(i64::from(docker_since(ts)), ts.as_secs());
        assert_eq!(docker_since(Timestamp(-5)), 0);
        assert_eq!(docker_since(Timestamp(i64::MAX)), i32::MAX);
    }

    #[test]
    fn an_unusable_host_is_refused_up_front() {
        let err = DockerSource::new(Some("gopher://x".into()), "n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("gopher://x"), "{err}");
        // A missing socket is an engine not started yet, waited for by `run`.
        DockerSource::new(Some("unix:///nonexistent.sock".into()), "n").unwrap();
    }
}
