//! `shiplog collect`: the collector alone, shipping over HTTP.

use std::process::ExitCode;

/// Runs the collector alone until Ctrl-C or SIGTERM.
pub fn run(args: crate::cli::CollectArgs) -> anyhow::Result<ExitCode> {
    use std::sync::Arc;

    use anyhow::Context;
    let config = match &args.config {
        Some(p) => crate::config::load(p)?,
        None => crate::config::Config::default(),
    };
    let sink = shiplog_collector::HttpSink::new(&args.remote.url, args.remote.token.clone())
        .with_context(|| format!("cannot ship to {}", args.remote.url))?;
    let cc = crate::node::collector_config(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(shiplog_collector::run(cc, Arc::new(sink), shutdown.clone()));
        tracing::info!(url = %args.remote.url, "collector is shipping");
        crate::node::wait_for_signal().await;
        shutdown.cancel();
        task.await??;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
