//! The log task: follows one container's stdout and stderr until the stream ends (the
//! container stopped) or shutdown, and sends its events into the pipeline.

use std::sync::Arc;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;
use shiplog_core::{Event, Stream, Timestamp};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::identity::OwnContainer;
use super::metadata::ContainerMeta;
use super::record::ContainerLog;
use crate::error::chain;
use crate::sources::EventSender;

/// Which container to follow and from when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FollowRequest {
    /// Full container id.
    pub id: String,
    /// Docker's `since`, whole seconds since the epoch; 0 reads the whole log.
    pub since_secs: i32,
    /// Lines Docker dates at or before this were shipped already.
    pub skip_through: Option<Timestamp>,
}

/// How a log task ended: where to resume if the same container starts again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FollowOutcome {
    /// Full container id.
    pub id: String,
    /// The latest Docker time shipped (or the cut-off it was started with).
    pub cursor: Option<Timestamp>,
}

/// What every log task shares.
#[derive(Debug)]
pub(super) struct FollowContext {
    /// Node name stamped on events.
    pub node: Arc<str>,
    /// Our own container, never followed.
    pub own: OwnContainer,
    /// Where events go.
    pub tx: EventSender,
    /// Stops every task.
    pub shutdown: CancellationToken,
}

/// Follows one container; returns when its log ends, it is skipped, or on shutdown.
pub(super) async fn follow(
    docker: Docker,
    request: FollowRequest,
    context: Arc<FollowContext>,
) -> FollowOutcome {
    let FollowRequest {
        id,
        since_secs,
        skip_through,
    } = request;
    let short = &id[..id.len().min(12)];
    let mut outcome = FollowOutcome {
        id: id.clone(),
        cursor: skip_through,
    };
    if context.own.is(&id) {
        debug!(container_id = %short, "not following our own container");
        return outcome;
    }
    let inspected = tokio::select! {
        inspected = docker.inspect_container(&id, None) => inspected,
        () = context.shutdown.cancelled() => return outcome,
    };
    let meta = match inspected {
        Ok(inspect) => ContainerMeta::from_inspect(&inspect),
        Err(error) => {
            debug!(container_id = %short, error = %chain(&error), "cannot inspect container; not following it");
            return outcome;
        }
    };
    let Some(meta) = meta else {
        return outcome;
    };
    if meta.excluded {
        debug!(container = %meta.name, "container labelled shiplog.exclude=true; not following it");
        return outcome;
    }
    debug!(container = %meta.name, container_id = %short, since = since_secs, "following container logs");

    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        timestamps: true,
        since: since_secs,
        ..LogsOptions::default()
    };
    let mut frames = docker.logs(&id, Some(options));
    let mut log = ContainerLog::new(meta, Arc::clone(&context.node), skip_through);
    let mut events = Vec::new();
    loop {
        let frame = tokio::select! {
            frame = frames.next() => frame,
            () = context.shutdown.cancelled() => {
                outcome.cursor = log.cursor();
                return outcome;
            }
        };
        let received = Timestamp::now();
        match frame {
            Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                log.push(Stream::Stdout, &message, received, &mut events);
            }
            Some(Ok(LogOutput::StdErr { message })) => {
                log.push(Stream::Stderr, &message, received, &mut events);
            }
            Some(Ok(LogOutput::StdIn { .. })) => continue,
            Some(Err(error)) => {
                warn!(container = %log.meta().name, error = %chain(&error), "container log stream failed");
                break;
            }
            None => break,
        }
        let delivered = send_all(&context, &mut events).await;
        outcome.cursor = log.cursor();
        if !delivered {
            return outcome;
        }
    }
    log.finish(Timestamp::now(), &mut events);
    send_all(&context, &mut events).await;
    outcome.cursor = log.cursor();
    debug!(container = %log.meta().name, "container log ended");
    outcome
}

/// Sends events in order, waiting while the channel is full (see [`crate::sources`]).
/// Returns false when the pipeline is shutting down.
async fn send_all(context: &FollowContext, events: &mut Vec<Event>) -> bool {
    for event in events.drain(..) {
        tokio::select! {
            sent = context.tx.send(event) => {
                if sent.is_err() {
                    return false;
                }
            }
            () = context.shutdown.cancelled() => return false,
        }
    }
    true
}
