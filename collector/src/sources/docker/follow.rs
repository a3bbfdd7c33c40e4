//! The log task: follows one container's stdout and stderr until the stream ends (the
//! container stopped) or shutdown, and sends its events into the pipeline.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures_util::{Stream as FrameStream, StreamExt};
use shiplog_core::{Stream, Timestamp};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::filter::ContainerFilter;
use super::identity::OwnContainer;
use super::log_files::LogFiles;
use super::metadata::ContainerMeta;
use super::raw_logs::{LogQuery, RawLogs, RawLogsError};
use super::record::{ContainerLog, Resume};
use super::rotation::{LostLines, Rotation, Skip, SkipWatch};
use crate::checkpoint::CheckpointStore;
use crate::error::chain;
use crate::sources::{EventSender, SourceEvent};
use crate::telemetry::{InternalEvent, LinesLost, RotationChecked};
use crate::transforms::{ContainerTransforms, Transforms};

/// Room for events a log task keeps between reads once its reads are small again.
const EVENTS_KEPT: usize = 32;

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
    /// The engine's Unix socket, when it is reached through one: logs are then read from
    /// it directly (see [`super::raw_logs`]); otherwise through bollard.
    pub socket: Option<PathBuf>,
    /// Followed `json-file` logs are read from the engine's files when they can be (a
    /// local engine, files readable here; see [`super::log_files`]).
    pub log_files: bool,
    /// Where each container's reading begins is recorded here (see
    /// [`CheckpointStore::begin`]).
    pub checkpoints: Arc<CheckpointStore>,
    /// Stops every task.
    pub shutdown: CancellationToken,
}

/// Follows one container; returns when its log ends, it is skipped, on shutdown, or when
/// `stop` (a child of the shutdown token) is cancelled. `stop` ends the task only while it
/// waits for the next read, with every event made so far sent, so the cursor it returns is
/// exact and a new task can follow on from it.
pub(super) async fn follow(
    docker: Docker,
    request: FollowRequest,
    context: Arc<FollowContext>,
    stop: CancellationToken,
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
    let (meta, rotation, files, mut started) = match inspected {
        Ok(inspect) => (
            ContainerMeta::from_inspect(&inspect),
            Rotation::from_inspect(&inspect),
            FileLog::from_inspect(&inspect),
            inspect
                .state
                .as_ref()
                .and_then(|s| s.started_at.as_deref())
                .and_then(|t| Timestamp::parse_rfc3339(t).ok()),
        ),
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
    context.checkpoints.begin(&id, resume.as_checkpoint());
    let since = resume.since_secs();
    debug!(container = %meta.name, container_id = %short, since, "following container logs");

    let transforms = context
        .transforms
        .for_container(&meta.name, &meta.image, &meta.labels);
    let tty = meta.tty;
    // A TTY log is chunks, not entries with times of their own: no skip can be told there.
    let mut watch = rotation.filter(|_| !tty).map(|rotation| {
        let mut watch = SkipWatch::new(rotation);
        if let Some(shipped) = resume.last_shipped_line() {
            watch.resume_after(shipped, Timestamp::now());
        }
        watch
    });
    let mut log = ContainerLog::new(
        meta,
        Arc::clone(&context.node),
        resume,
        context.transforms.multiline(),
        context.transforms.multiline_timeout(),
    )
    .with_max_line(context.transforms.max_line())
    .with_predictions(transforms.predictions().cloned());
    let files = files.filter(|_| context.log_files && !tty);
    let open = async {
        if let Some(files) = files {
            match LogFiles::open(&docker, &id, files.path, files.max_file, i64::from(since)).await {
                Ok(files) => return LogReader::Files(files),
                Err(error) => {
                    debug!(container = %log.meta().name, error = %error, "cannot read the log from the engine's files; reading it through the engine");
                }
            }
        }
        LogReader::open(&docker, &context, &id, LogQuery::follow(since), tty).await
    };
    let mut reader = tokio::select! {
        reader = open => reader,
        () = context.shutdown.cancelled() => return outcome,
    };
    if let LogReader::Files(files) = &reader {
        // The files skip nothing: only where the reader may have missed one is checked.
        watch = watch.map(SkipWatch::marked_only);
        // Read from its beginning with every kept file there: what it wrote first may be
        // gone (a run that died before reading it, say).
        if !files.oldest_may_be_gone() {
            started = None;
        }
    }
    // Read from its beginning: what it wrote first may be gone (a run that died before
    // reading it, say). The files tell whether every kept file is there; the engine does
    // not, so there the rate after the first entry decides (see `lost_from_start`).
    if let (Some(watch), Some(started)) = (watch.as_mut(), started)
        && resume.is_from_beginning()
    {
        // The engine dates the start a little after the process's first lines.
        watch.resume_after_start(started.offset(-START_SLACK_NANOS), Timestamp::now());
    }
    let mut events = Vec::new();
    // One shutdown future for the whole stream: making one per frame registers and
    // unregisters a waiter in the token's tree (a lock) for every line.
    let cancelled = stop.cancelled();
    tokio::pin!(cancelled);
    // Likewise one timer, moved only when the multiline deadline moves, instead of a timer
    // entry made and dropped for every frame.
    let flush_timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(flush_timer);
    let mut armed: Option<tokio::time::Instant> = None;
    let ended = loop {
        let deadline = log.next_deadline().map(tokio::time::Instant::from_std);
        if let Some(d) = deadline
            && armed != Some(d)
        {
            flush_timer.as_mut().reset(d);
            armed = Some(d);
        }
        // `None`: a pending multi-line event's wait is over.
        let read = tokio::select! {
            read = reader.read() => Some(read),
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
        let (failure, ended) = match read {
            None => {
                log.flush_due(now, received, &mut events);
                (None, false)
            }
            // At the end too, what is held is drained: a short log can arrive whole with
            // the response head, before any read.
            Some(read @ (Read::More | Read::End)) => {
                if let (LogReader::Files(files), Some(watch)) = (&mut reader, watch.as_mut())
                    && files.take_unknown_boundary()
                {
                    watch.mark();
                }
                let failure = loop {
                    let mut skip = None;
                    let drained = reader.drain_until(|stream, frame| {
                        if let Some(watch) = watch.as_mut()
                            && let Some(ts) = frame_time(frame)
                        {
                            skip = watch.check(ts, frame.len(), received);
                            if skip.is_some() {
                                return false;
                            }
                        }
                        log.push(stream, frame, received, now, &mut events);
                        true
                    });
                    let (Ok(()), Some(skip), Some(watch)) = (&drained, skip, watch.as_mut()) else {
                        break drained.err();
                    };
                    // What came before the jump goes first, then what the jump skipped.
                    let filled = send_all(&context, &transforms, &mut events).await
                        && fill_skip(
                            &docker,
                            &context,
                            &transforms,
                            &id,
                            skip,
                            watch,
                            &mut log,
                            &mut events,
                        )
                        .await;
                    outcome.cursor = Some(log.cursor());
                    if !filled {
                        return outcome;
                    }
                    watch.filled();
                };
                (failure, matches!(read, Read::End))
            }
            Some(Read::Failed(error)) => (Some(error), false),
        };
        if let Some(error) = &failure {
            warn!(container = %log.meta().name, error = %error, "container log stream failed");
        }
        if failure.is_some() || ended {
            // The events made before the end are sent after the loop.
            break ended;
        }
        if let Some(lost) = watch.as_mut().and_then(SkipWatch::take_estimated_gap) {
            report_lost(&log, &lost, &mut events);
        }
        let made = events.len();
        let delivered = send_all(&context, &transforms, &mut events).await;
        if made < EVENTS_KEPT && events.capacity() > EVENTS_KEPT {
            // A backlog is over: a hundred quiet tasks each holding room for a large
            // read's events (600 bytes each) would hold megabytes for nothing.
            events.shrink_to(EVENTS_KEPT);
        }
        outcome.cursor = Some(log.cursor());
        if !delivered {
            return outcome;
        }
    };
    drop(reader);
    if ended
        && !reread_end(
            &docker,
            &context,
            &transforms,
            &id,
            tty,
            &mut log,
            &mut events,
            watch.as_mut(),
        )
        .await
    {
        outcome.cursor = Some(log.cursor());
        return outcome;
    }
    log.finish(Timestamp::now(), &mut events);
    if let Some(lost) = watch.as_mut().and_then(SkipWatch::take_gap) {
        report_lost(&log, &lost, &mut events);
    }
    send_all(&context, &transforms, &mut events).await;
    outcome.cursor = Some(log.cursor());
    debug!(container = %log.meta().name, "container log ended");
    outcome
}

/// Reads back the stored entries a followed log skipped between `skip.after` and
/// `skip.before` (see [`super::rotation`]) and sends them; if the entry at `skip.after` is
/// itself gone, the lines after it were deleted before they could be read, and a gap event
/// says so. Returns false on shutdown.
#[allow(clippy::too_many_arguments)]
async fn fill_skip(
    docker: &Docker,
    context: &FollowContext,
    transforms: &ContainerTransforms,
    id: &str,
    skip: Skip,
    watch: &mut SkipWatch,
    log: &mut ContainerLog,
    events: &mut Vec<SourceEvent>,
) -> bool {
    let query = LogQuery::between(skip.after, skip.before);
    let mut reader = tokio::select! {
        reader = LogReader::open(docker, context, id, query, false) => reader,
        () = context.shutdown.cancelled() => return false,
    };
    // Whether the entry before the jump (or one before it) came back: then its file is
    // still there, and so is every later one.
    let mut reaches_back = false;
    let mut first: Option<Timestamp> = None;
    let mut recovered = 0u64;
    let failure = loop {
        let read = tokio::select! {
            read = reader.read() => read,
            () = context.shutdown.cancelled() => return false,
        };
        let (received, now) = (Timestamp::now(), std::time::Instant::now());
        let drained = reader.drain_until(|stream, frame| {
            match frame_time(frame) {
                Some(ts) if ts <= skip.after => reaches_back = true,
                // The entry after the jump comes from the followed log, as do later ones
                // (the client's whole seconds may bring some).
                Some(ts) if ts < skip.before => {
                    first.get_or_insert(ts);
                    recovered += 1;
                    log.push(stream, frame, received, now, events);
                }
                _ => {}
            }
            true
        });
        if !send_all(context, transforms, events).await {
            return false;
        }
        match (read, drained) {
            (Read::Failed(error), _) | (_, Err(error)) => break Some(error),
            (Read::End, Ok(())) => break None,
            (Read::More, Ok(())) => {}
        }
    };
    RotationChecked {
        container: &log.meta().name,
        recovered,
    }
    .emit();
    if let Some(error) = failure {
        warn!(container = %log.meta().name, error, "cannot read back what the container's followed log may have skipped at a rotation; lines may be missing");
        return true;
    }
    // From a container's start, the first line may simply come a little later.
    let since_start = first.unwrap_or(skip.before).0 - skip.after.0;
    if !(reaches_back || skip.from_start && since_start < 2 * START_SLACK_NANOS) {
        let lost = LostLines {
            after: skip.after,
            before: first.unwrap_or(skip.before),
            estimate: 0,
        };
        if skip.from_start {
            watch.lost_from_start(lost);
        } else if let Some(lost) = watch.lost(lost) {
            report_lost(log, &lost, events);
            return send_all(context, transforms, events).await;
        }
    }
    true
}

/// Counts and logs lines lost to rotation, and adds the gap event to `events`.
fn report_lost(log: &ContainerLog, lost: &LostLines, events: &mut Vec<SourceEvent>) {
    LinesLost {
        container: &log.meta().name,
        estimate: lost.estimate,
        after: lost.after,
        before: lost.before,
    }
    .emit();
    events.push(log.gap_event(lost, Timestamp::now()));
}

/// A log read from its beginning whose first stored entry comes this soon after the
/// container's start is taken as whole; the engine dates the start up to this long after
/// the first lines.
const START_SLACK_NANOS: i64 = 100_000_000;

/// Entries asked for first when the end of a log is read again (see [`reread_end`]).
const REREAD_TAIL: u32 = 1_000;

/// Reads the end of a log again from the engine's files once its followed stream has ended,
/// and sends what the stream left out. Returns false on shutdown.
///
/// The engine can end a followed log without its last lines: a follow request sends the
/// stored part first, and if the container has stopped by the time that is sent, the
/// stream ends there, without what the container wrote meanwhile (seen with Docker 20.10
/// and the json-file driver: the last burst of a container that exited just after a
/// collector restart was missing, though `docker logs` had it). Lines read already are
/// dropped when they come again.
///
/// First only the last [`REREAD_TAIL`] entries are asked for, which the engine reads from
/// the end of the file whatever its size. That is enough when fewer came, or when the first
/// of them was read already; otherwise (or for a TTY log, whose chunks are not entries) the
/// log is read again from a second before the last line read.
#[allow(clippy::too_many_arguments)]
async fn reread_end(
    docker: &Docker,
    context: &FollowContext,
    transforms: &ContainerTransforms,
    id: &str,
    tty: bool,
    log: &mut ContainerLog,
    events: &mut Vec<SourceEvent>,
    watch: Option<&mut SkipWatch>,
) -> bool {
    let read_through = log.read_through();
    let since = log.reread_after_seen();
    // Whether an entry read already came again (then nothing between was deleted), and the
    // first one that had not been read.
    let mut reach = Reach::default();
    if !tty {
        let query = LogQuery {
            since,
            follow: false,
            tail: Some(REREAD_TAIL),
            between: None,
        };
        let mut last = Vec::new();
        let read = read_stored(docker, context, id, tty, query, |stream, frame| {
            last.push((stream, frame.to_vec()));
        });
        match read.await {
            Stored::Read => {}
            Stored::Failed(error) => {
                reread_failed(log, &error);
                return true;
            }
            Stored::Shutdown => return false,
        }
        let reaches_back = last
            .first()
            .and_then(|(_, frame)| frame_time(frame))
            .zip(read_through)
            .is_some_and(|(first, through)| first <= through);
        if last.len() < REREAD_TAIL as usize || reaches_back {
            let (received, now) = (Timestamp::now(), std::time::Instant::now());
            for (stream, frame) in &last {
                reach.note(frame, read_through);
                log.push(*stream, frame, received, now, events);
            }
            reach.report(read_through, watch, log, events);
            return send_all(context, transforms, events).await;
        }
    }
    let query = LogQuery {
        since,
        follow: false,
        tail: None,
        between: None,
    };
    let mut pending = Vec::new();
    let mut reader = tokio::select! {
        reader = LogReader::open(docker, context, id, query, tty) => reader,
        () = context.shutdown.cancelled() => return false,
    };
    loop {
        let read = tokio::select! {
            read = reader.read() => read,
            () = context.shutdown.cancelled() => return false,
        };
        let (received, now) = (Timestamp::now(), std::time::Instant::now());
        let drained = reader.drain(|stream, frame| {
            reach.note(frame, read_through);
            log.push(stream, frame, received, now, &mut pending);
        });
        events.append(&mut pending);
        if !send_all(context, transforms, events).await {
            return false;
        }
        let failure = match (read, drained) {
            (Read::Failed(error), _) | (_, Err(error)) => error,
            (Read::End, Ok(())) => {
                reach.report(read_through, watch, log, events);
                return send_all(context, transforms, events).await;
            }
            (Read::More, Ok(())) => continue,
        };
        reread_failed(log, &failure);
        return true;
    }
}

/// How far back a stored part of a log, read again after its followed stream ended,
/// reached.
#[derive(Debug, Default)]
struct Reach {
    /// An entry read before came again: its file, and every later one, is still there.
    back: bool,
    /// The first entry that had not been read.
    first_new: Option<Timestamp>,
}

impl Reach {
    fn note(&mut self, frame: &[u8], read_through: Option<Timestamp>) {
        match (frame_time(frame), read_through) {
            (Some(ts), Some(through)) if ts <= through => self.back = true,
            (Some(ts), _) => {
                self.first_new.get_or_insert(ts);
            }
            (None, _) => {}
        }
    }

    /// For a rotating log (`watch`): when nothing read before came again, what lay between
    /// the last entry read and the first one still stored was deleted before it was read.
    fn report(
        &self,
        read_through: Option<Timestamp>,
        watch: Option<&mut SkipWatch>,
        log: &ContainerLog,
        events: &mut Vec<SourceEvent>,
    ) {
        let (Some(watch), Some(after), Some(before), false) =
            (watch, read_through, self.first_new, self.back)
        else {
            return;
        };
        let lost = LostLines {
            after,
            before,
            estimate: 0,
        };
        if let Some(lost) = watch.lost(lost).or_else(|| watch.take_gap()) {
            report_lost(log, &lost, events);
        }
    }
}

/// Says why the end of a log could not be read again: only in debug when the container is
/// gone (removed as it stopped, `docker run --rm`), since its log went with it.
fn reread_failed(log: &ContainerLog, error: &str) {
    if error.contains("No such container") {
        debug!(container = %log.meta().name, error, "container removed before the end of its log was read again");
    } else {
        warn!(container = %log.meta().name, error, "cannot read the end of the container's log again; lines written just before its log ended may be missing until it is next followed (from its checkpoint: the next start of the container or of the collector, or a re-sync after the engine comes back)");
    }
}

/// How reading a stored part of a log ended.
enum Stored {
    /// All of it was read.
    Read,
    /// The stream broke or could not be opened.
    Failed(String),
    /// Shutdown came first.
    Shutdown,
}

/// Reads the part of a log that `query` names (not followed) and hands every entry to
/// `each`.
async fn read_stored(
    docker: &Docker,
    context: &FollowContext,
    id: &str,
    tty: bool,
    query: LogQuery,
    mut each: impl FnMut(Stream, &[u8]),
) -> Stored {
    let mut reader = tokio::select! {
        reader = LogReader::open(docker, context, id, query, tty) => reader,
        () = context.shutdown.cancelled() => return Stored::Shutdown,
    };
    loop {
        let read = tokio::select! {
            read = reader.read() => read,
            () = context.shutdown.cancelled() => return Stored::Shutdown,
        };
        if let Err(error) = reader.drain(&mut each) {
            return Stored::Failed(error);
        }
        match read {
            Read::More => {}
            Read::End => return Stored::Read,
            Read::Failed(error) => return Stored::Failed(error),
        }
    }
}

/// Docker's time at the start of an entry read with timestamps.
fn frame_time(frame: &[u8]) -> Option<Timestamp> {
    let end = memchr::memchr(b' ', frame)?;
    let text = std::str::from_utf8(&frame[..end]).ok()?;
    Timestamp::parse_rfc3339(text).ok()
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

/// Where a container's json-file log lies, from `docker inspect`.
struct FileLog {
    path: PathBuf,
    max_file: u32,
}

impl FileLog {
    /// The log's files, for a container logging with `json-file` (the only driver whose
    /// files are read here).
    fn from_inspect(inspect: &bollard::models::ContainerInspectResponse) -> Option<FileLog> {
        let log_config = inspect.host_config.as_ref()?.log_config.as_ref()?;
        if log_config.typ.as_deref() != Some("json-file") {
            return None;
        }
        let path = inspect.log_path.as_deref().filter(|p| !p.is_empty())?;
        Some(FileLog {
            path: PathBuf::from(path),
            max_file: Rotation::from_inspect(inspect).map_or(1, |r| r.max_file.max(1)),
        })
    }
}

/// A container's log stream: read from the engine's files, from its socket directly, or
/// through bollard.
enum LogReader {
    Files(LogFiles),
    Raw(RawLogs),
    Engine {
        frames: Pin<Box<dyn FrameStream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>,
        /// The frame the last read returned, until drained.
        held: Option<LogOutput>,
    },
}

/// What a read found.
enum Read {
    /// More of the log: drain it.
    More,
    /// The log ended (the container stopped).
    End,
    /// The stream broke.
    Failed(String),
}

impl LogReader {
    /// Opens the part of container `id`'s log that `query` names: directly from the socket when there is
    /// one, it answers and the container has no TTY; else through bollard.
    async fn open(
        docker: &Docker,
        context: &FollowContext,
        id: &str,
        query: LogQuery,
        tty: bool,
    ) -> LogReader {
        // A TTY log has no frames: it keeps bollard's chunks (see `raw_logs`).
        if let Some(socket) = context.socket.as_ref().filter(|_| !tty) {
            match RawLogs::open(socket, id, &query).await {
                Ok(raw) => return LogReader::Raw(raw),
                Err(error @ RawLogsError::Io { .. }) => {
                    debug!(error = %error, "cannot read the log from the engine socket directly; reading it through the client");
                }
                // The engine answered, with an error: the client would get the same.
                Err(error) => {
                    return LogReader::Engine {
                        frames: Box::pin(futures_util::stream::once(async move {
                            Err(bollard::errors::Error::IOError {
                                err: std::io::Error::other(error.to_string()),
                            })
                        })),
                        held: None,
                    };
                }
            }
        }
        let options = LogsOptions {
            follow: query.follow,
            stdout: true,
            stderr: true,
            timestamps: true,
            since: query.since,
            until: query.until_secs(),
            tail: query
                .tail
                .map_or_else(|| "all".to_string(), |n| n.to_string()),
        };
        LogReader::Engine {
            frames: Box::pin(docker.logs(id, Some(options))),
            held: None,
        }
    }

    /// Waits for more of the log (cancel-safe: nothing is lost if dropped while waiting).
    async fn read(&mut self) -> Read {
        match self {
            LogReader::Files(files) => match files.fill().await {
                Ok(true) => Read::More,
                Ok(false) => Read::End,
                Err(error) => Read::Failed(error.to_string()),
            },
            LogReader::Raw(raw) => match raw.fill().await {
                Ok(true) => Read::More,
                Ok(false) => Read::End,
                Err(error) => Read::Failed(error.to_string()),
            },
            LogReader::Engine { frames, held } => match frames.next().await {
                Some(Ok(frame)) => {
                    *held = Some(frame);
                    Read::More
                }
                Some(Err(error)) => Read::Failed(chain(&error)),
                None => Read::End,
            },
        }
    }

    /// Hands every whole frame read to `each`, in order.
    fn drain(&mut self, mut each: impl FnMut(Stream, &[u8])) -> Result<(), String> {
        self.drain_until(|stream, frame| {
            each(stream, frame);
            true
        })
    }

    /// Like [`drain`](Self::drain), but stops before a frame `each` answers false for:
    /// that frame is handed out first by the next drain.
    fn drain_until(&mut self, mut each: impl FnMut(Stream, &[u8]) -> bool) -> Result<(), String> {
        match self {
            LogReader::Files(files) => files.drain_until(each).map_err(|e| e.to_string()),
            LogReader::Raw(raw) => raw.drain_until(each).map_err(|e| e.to_string()),
            LogReader::Engine { held, .. } => {
                let taken = match held.as_ref() {
                    Some(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        each(Stream::Stdout, message)
                    }
                    Some(LogOutput::StdErr { message }) => each(Stream::Stderr, message),
                    Some(LogOutput::StdIn { .. }) | None => true,
                };
                if taken {
                    *held = None;
                }
                Ok(())
            }
        }
    }
}
