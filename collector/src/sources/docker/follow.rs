//! The log task: follows one container's stdout and stderr until the stream ends (the
//! container stopped) or shutdown, and sends its events into the pipeline.

use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;
use shiplog_core::{Stream, Timestamp};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::filter::ContainerFilter;
use super::identity::OwnContainer;
use super::metadata::ContainerMeta;
use super::record::{ContainerLog, Resume};
use crate::error::chain;
use crate::sources::{EventSender, SourceEvent};
use crate::transforms::{ContainerTransforms, Transforms};

/// Which container to follow and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FollowRequest {
    /// Full container id.
    pub id: String,
    /// Where to read from and what was shipped already.
    pub resume: Resume,
}

/// How a log task ended: where to resume if the same container starts again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FollowOutcome {
    /// Full container id.
    pub id: String,
    /// After the last event sent (or where it was asked to start).
    pub cursor: Option<Resume>,
}

/// What every log task shares.
#[derive(Debug)]
pub(super) struct FollowContext {
    /// Node name stamped on events.
    pub node: Arc<str>,
    /// Our own container, never followed.
    pub own: OwnContainer,
    /// Which containers are collected.
    pub filter: ContainerFilter,
    /// Multiline, parse and redact rules.
    pub transforms: Transforms,
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
    let FollowRequest { id, resume } = request;
    let short = &id[..id.len().min(12)];
    let mut outcome = FollowOutcome {
        id: id.clone(),
        cursor: Some(resume),
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
    if let Some(reason) = context.filter.skip_reason(&meta) {
        debug!(container = %meta.name, reason, "container not collected");
        return outcome;
    }
    let since = resume.since_secs();
    debug!(container = %meta.name, container_id = %short, since, "following container logs");

    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        timestamps: true,
        since,
        ..LogsOptions::default()
    };
    let mut frames = docker.logs(&id, Some(options));
    let transforms = context
        .transforms
        .for_container(&meta.name, &meta.image, &meta.labels);
    let mut log = ContainerLog::new(
        meta,
        Arc::clone(&context.node),
        resume,
        context.transforms.multiline(),
        context.transforms.multiline_timeout(),
    )
    .with_predictions(transforms.predictions().cloned());
    let mut events = Vec::new();
    // One shutdown future for the whole stream: making one per frame registers and
    // unregisters a waiter in the token's tree (a lock) for every line.
    let cancelled = context.shutdown.cancelled();
    tokio::pin!(cancelled);
    // Likewise one timer, moved only when the multiline deadline moves, instead of a timer
    // entry made and dropped for every frame.
    let flush_timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(flush_timer);
    let mut armed: Option<tokio::time::Instant> = None;
    loop {
        let deadline = log.next_deadline().map(tokio::time::Instant::from_std);
        if let Some(d) = deadline
            && armed != Some(d)
        {
            flush_timer.as_mut().reset(d);
            armed = Some(d);
        }
        // `None`: a pending multi-line event's wait is over.
        let frame = tokio::select! {
            frame = frames.next() => Some(frame),
            () = &mut flush_timer, if deadline.is_some() => None,
            () = &mut cancelled => {
                // What was not sent is not acknowledged either: the checkpoint stays
                // before it and the next run reads it again.
                outcome.cursor = Some(log.cursor());
                return outcome;
            }
        };
        let received = Timestamp::now();
        let now = std::time::Instant::now();
        match frame {
            None => log.flush_due(now, received, &mut events),
            Some(Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message }))) => {
                log.push(Stream::Stdout, &message, received, now, &mut events);
            }
            Some(Some(Ok(LogOutput::StdErr { message }))) => {
                log.push(Stream::Stderr, &message, received, now, &mut events);
            }
            Some(Some(Ok(LogOutput::StdIn { .. }))) => continue,
            Some(Some(Err(error))) => {
                warn!(container = %log.meta().name, error = %chain(&error), "container log stream failed");
                break;
            }
            Some(None) => break,
        }
        let delivered = send_all(&context, &transforms, &mut events).await;
        outcome.cursor = Some(log.cursor());
        if !delivered {
            return outcome;
        }
    }
    log.finish(Timestamp::now(), &mut events);
    send_all(&context, &transforms, &mut events).await;
    outcome.cursor = Some(log.cursor());
    debug!(container = %log.meta().name, "container log ended");
    outcome
}

/// Transforms and sends events in order, waiting while the channel is full (see
/// [`crate::sources`]). Returns false when the pipeline is shutting down.
async fn send_all(
    context: &FollowContext,
    transforms: &ContainerTransforms,
    events: &mut Vec<SourceEvent>,
) -> bool {
    for mut event in events.drain(..) {
        transforms.apply(&mut event.event);
        // Room in the channel is the common case: no need to also watch for shutdown.
        let event = match context.tx.try_send(event) {
            Ok(()) => continue,
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return false,
            Err(tokio::sync::mpsc::error::TrySendError::Full(event)) => event,
        };
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
