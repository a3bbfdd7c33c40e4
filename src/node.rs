//! Running a node: indexer + query API, with or without the in-process collector.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shiplog_indexer::Indexer;
use shiplog_query::AppState;
use tokio_util::sync::CancellationToken;

use crate::cli::NodeArgs;
use crate::config::{self, Config};
use crate::local_sink::LocalSink;

/// How long shutdown waits for each part to drain before giving up on it.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Resolves the config file and command-line overrides into one config.
pub fn resolve_config(args: &NodeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => config::load(path)?,
        None => Config::default(),
    };
    config.source.clone_from(&args.config);
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    Ok(config)
}

/// Runs until Ctrl-C or SIGTERM, then drains: collector first (its last batches still
/// reach the indexer), then the API, then the indexer commits and closes.
pub fn run(config: Config, with_collector: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("shiplog-rt")
        .build()
        .context("cannot start the async runtime")?;
    // Before the runtime runs: the exporters' blocking HTTP client must not be built on it.
    let otel = crate::otel::start(&config.telemetry)?;
    let result = runtime.block_on(run_async(config, with_collector, otel.as_ref()));
    drop(runtime);
    if let Some(otel) = otel {
        otel.shutdown();
    }
    result
}

/// The API's tokens and TLS settings, checked against the listen address: without tokens
/// the API only listens on loopback unless `[api] allow_unauthenticated = true`.
pub fn api_security(
    config: &Config,
) -> anyhow::Result<(
    shiplog_query::Auth,
    Option<Arc<shiplog_query::tls::ServerConfig>>,
)> {
    let auth = config.auth()?;
    if !auth.is_enabled() && !config.listen.ip().is_loopback() && !config.api.allow_unauthenticated
    {
        anyhow::bail!(
            "refusing to listen on {} without API tokens: anyone who can reach it could read and write every log; add [[auth.token]] entries to the config, listen on 127.0.0.1, or set [api] allow_unauthenticated = true",
            config.listen
        );
    }
    let tls = match (&config.api.tls_cert, &config.api.tls_key) {
        (Some(cert), Some(key)) => {
            Some(shiplog_query::tls::server_config(cert, key).map_err(|e| anyhow::anyhow!("{e}"))?)
        }
        (None, None) => None,
        _ => anyhow::bail!("[api] tls_cert and tls_key must be set together"),
    };
    Ok((auth, tls))
}

async fn run_async(
    config: Config,
    with_collector: bool,
    otel: Option<&crate::otel::Otel>,
) -> anyhow::Result<()> {
    let (auth, tls) = api_security(&config)?;
    // Refuse bad collector rules (regexes) before anything starts.
    let collector_settings = collector_config(&config);
    if with_collector && config.docker.enabled {
        collector_settings
            .validate()
            .context("invalid [collector] settings")?;
    }
    // The hash key may come from the environment: check it now, not when the collector
    // task fails in the background.
    let prediction_rules = config
        .predictions
        .build()
        .context("invalid [predictions] settings")?;
    let indexer_config = config.indexer();
    let data_dir = config.data_dir.clone();
    let indexer = tokio::task::spawn_blocking(move || Indexer::open(indexer_config))
        .await?
        .with_context(|| format!("cannot open the data directory {}", data_dir.display()))?;
    let indexer = Arc::new(indexer);
    // The service catalog rebuilds from the index in the background, ready for the first
    // /api/v1/services request.
    indexer.start_catalog();
    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| {
        format!("cannot listen on {}: is another shiplog running? pick another address with --listen", config.listen)
    })?;
    let addr = listener.local_addr()?;
    let retention = tokio::spawn(run_retention(indexer.clone(), config.retention.interval.0));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let alerts = start_alerts(&config, &indexer, format!("{scheme}://{addr}"))?;
    let reloads = tokio::spawn(reload_on_sighup(alerts.clone()));
    let api_shutdown = CancellationToken::new();
    let state = AppState {
        limits: config.api_limits(),
        shutdown: api_shutdown.clone(),
        alerts: Some(alerts.clone()),
        predictions: Arc::new(shiplog_query::predictions::PredictionService::new(
            &config.data_dir,
            prediction_rules,
        )),
        // The in-process collector's counters (lines read, batches, retries, buffer, drops,
        // lag per container) on the node's one /metrics.
        extra_metrics: (with_collector && config.docker.enabled)
            .then(|| Arc::new(shiplog_collector::render_prometheus) as shiplog_query::ExtraMetrics),
        ..AppState::new(indexer.clone())
    };
    if auth.is_enabled() {
        tracing::info!("API tokens configured: requests need Authorization: Bearer <token>");
    } else if addr.ip().is_loopback() {
        tracing::info!(
            "no API tokens configured: the API is open to this machine only (loopback); add [[auth.token]] to serve other hosts"
        );
    } else {
        tracing::warn!(
            "no API tokens configured and allow_unauthenticated is set: the API is open to anyone who can reach it"
        );
    }
    let telemetry = Arc::new(shiplog_query::telemetry::Telemetry::default());
    if let Some(otel) = otel {
        otel.watch(&telemetry, &indexer);
    }
    let server = tokio::spawn(shiplog_query::serve_observed(
        listener, state, auth, tls, telemetry,
    ));
    tracing::info!(api = %format!("{scheme}://{addr}"), data_dir = %config.data_dir.display(), "shiplog is up");

    let collector_shutdown = CancellationToken::new();
    let collector = if with_collector && config.docker.enabled {
        let sink = Arc::new(LocalSink::new(indexer.clone()));
        let cc = collector_config(&config);
        Some(tokio::spawn(shiplog_collector::run(
            cc,
            sink,
            collector_shutdown.clone(),
        )))
    } else {
        if with_collector {
            tracing::info!("docker collection is disabled; the node only serves the API");
        }
        None
    };

    wait_for_signal().await;
    tracing::info!("shutting down: draining collector, API and indexer");
    collector_shutdown.cancel();
    if let Some(c) = collector {
        match tokio::time::timeout(DRAIN_TIMEOUT, c).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "collector stopped with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "collector task failed"),
            Err(_) => tracing::warn!("collector did not drain in time"),
        }
    }
    retention.abort();
    api_shutdown.cancel();
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "API server stopped with an error"),
        Err(_) => tracing::warn!("API did not drain in time"),
        _ => {}
    }
    reloads.abort();
    // The engine writes its state file before the indexer closes.
    tokio::task::spawn_blocking(move || alerts.shutdown()).await?;
    tokio::task::spawn_blocking(move || indexer.close()).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Starts the alert engine over the indexer with the config's `[[alert]]` rules; reloads
/// read the config file again (nodes started without one have nothing to reload).
fn start_alerts(
    config: &Config,
    indexer: &Arc<Indexer>,
    api_url: String,
) -> anyhow::Result<Arc<shiplog_query::alerts::Alerts>> {
    use shiplog_query::alerts::{Alerts, AlertsConfig, Loader};
    let rules = config.compiled_alerts()?;
    let loader: Option<Loader> = config.source.clone().map(|path| {
        Box::new(move || {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let c = config::parse(&path, &text).map_err(|e| e.to_string())?;
            let rules = c.alert_rules(&path, &text).map_err(|e| e.to_string())?;
            Ok((rules, c.alerting))
        }) as Loader
    });
    let n = rules.len();
    let alerts = Alerts::start(
        indexer.clone(),
        AlertsConfig {
            rules,
            settings: config.alerting.clone(),
            data_dir: config.data_dir.clone(),
            default_url: api_url,
        },
        loader,
    )
    .map_err(|e| anyhow::anyhow!("cannot start alerting: {e}"))?;
    tracing::info!(
        rules = n,
        notifiers = config.alerting.names().len(),
        "alert engine started"
    );
    Ok(alerts)
}

/// Reloads the alert rules on every SIGHUP; a bad file is logged and the running rules stay.
async fn reload_on_sighup(alerts: Arc<shiplog_query::alerts::Alerts>) {
    #[cfg(unix)]
    {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload alert rules with POST /api/v1/alerts/reload");
                return;
            }
        };
        while hup.recv().await.is_some() {
            let a = alerts.clone();
            match tokio::task::spawn_blocking(move || a.reload()).await {
                Ok(Ok(n)) => tracing::info!(rules = n, "SIGHUP: alert rules reloaded"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "SIGHUP: alert rules not reloaded; the running rules stay")
                }
                Err(e) => tracing::warn!(error = %e, "SIGHUP: reload task failed"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = alerts;
    }
}

/// The collector's settings from the config file; checkpoints live under the data dir.
pub fn collector_config(config: &Config) -> shiplog_collector::CollectorConfig {
    use shiplog_collector::config::{ContainerMatch, ParseRule, RedactRule};
    let c = &config.collector;
    let matcher = |container: &Option<String>, image: &Option<String>| ContainerMatch {
        name: container.clone(),
        image: image.clone(),
    };
    shiplog_collector::CollectorConfig {
        node: shiplog_collector::config::hostname(),
        docker_host: config.docker.host.clone(),
        batch_max_events: c.batch_max_events,
        batch_max_bytes: c.batch_max_bytes.as_usize(),
        batch_max_age: c.batch_max_age.0,
        channel_capacity: c.channel_capacity,
        state_dir: Some(config.data_dir.join("collector")),
        exclude_names: c.exclude_names.clone(),
        exclude_images: c.exclude_images.clone(),
        include_names: c.include_names.clone(),
        include_images: c.include_images.clone(),
        include_labels: c.include_labels.clone(),
        multiline: c.multiline,
        multiline_start_pattern: c.multiline_start_pattern.clone(),
        multiline_flush_timeout: c.multiline_flush_timeout.0,
        metrics_interval: c.metrics_interval.0,
        buffer_max_bytes: c.buffer_max_bytes.0,
        buffer_when_full: c.buffer_when_full,
        buffer_spill_after: c.buffer_spill_after.0,
        telemetry_interval: c.telemetry_interval.0,
        read_from_head: c.read_from_head,
        max_line_bytes: c.max_line_bytes.as_usize(),
        docker_socket_logs: c.docker_socket_logs,
        docker_log_files: c.docker_log_files,
        predictions: config.predictions.clone(),
        parse_rules: c
            .parse
            .iter()
            .map(|p| ParseRule {
                name: p.name.clone(),
                pattern: p.pattern.clone(),
                containers: matcher(&p.container, &p.image),
            })
            .collect(),
        redact_rules: c
            .redact
            .iter()
            .map(|r| RedactRule {
                name: r.name.clone(),
                pattern: r.pattern.clone(),
                hash_key: r.hash_key.clone(),
                containers: matcher(&r.container, &r.image),
            })
            .collect(),
    }
}

/// Applies retention a minute after start (start-up replay and the first ingest go first)
/// and then every `interval`; a failure is logged and retried at the next interval.
async fn run_retention(indexer: Arc<Indexer>, interval: Duration) {
    let first = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut ticker = tokio::time::interval_at(first, interval.max(Duration::from_secs(60)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let ix = indexer.clone();
        match tokio::task::spawn_blocking(move || ix.apply_retention(false)).await {
            Ok(Ok(plan)) if !plan.steps.is_empty() => {
                tracing::info!(steps = plan.steps.len(), "retention applied");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "retention failed; retrying at the next interval")
            }
            Err(e) => tracing::warn!(error = %e, "retention task failed"),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; stop with Ctrl-C");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
