//! `dilux-dumper-host`: runs the Dilux app locally (every Spin component of `spin.toml`) and the backup
//! worker (the job-runner guest plus the dump capability).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use dilux_azure::Account;
use dilux_dumper_host::{dump::DumpOptions, runtime, server, storage::Storage, worker};

struct Args {
    manifest: PathBuf,
    listen: String,
    job_runner: Option<PathBuf>,
    serve: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args { manifest: "spin.toml".into(), listen: "127.0.0.1:3000".into(), job_runner: None, serve: true };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--manifest" => a.manifest = val("--manifest")?.into(),
            "--listen" => a.listen = val("--listen")?,
            "--job-runner" => a.job_runner = Some(val("--job-runner")?.into()),
            "--no-serve" => a.serve = false,
            "-h" | "--help" => {
                println!("usage: dilux-dumper-host [--manifest spin.toml] [--listen 127.0.0.1:3000] [--job-runner job_runner.wasm] [--no-serve]\n\
                          Variables come from SPIN_VARIABLE_<NAME> environment variables, as with Spin.");
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("DILUX_LOG").unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args()?;
    let mut env: HashMap<String, String> = std::env::vars().collect();

    if args.serve {
        let listener = tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        // Locally the API reaches this very process for connection tests, wherever it listens.
        env.entry("SPIN_VARIABLE_DUMPER_URL".into()).or_insert_with(|| format!("http://{addr}"));
        let app = Arc::new(server::App::load(&args.manifest, &env)?);
        let tick_token = env.get("SPIN_VARIABLE_TICK_TOKEN").cloned();
        // DILUX_TICKS=off: tests drive ticks themselves, with a simulated clock.
        if env.get("DILUX_TICKS").map(String::as_str) != Some("off") {
            server::spawn_ticks(&app.ticks, format!("http://{addr}"), tick_token);
        }
        tracing::info!(url = %format!("http://{addr}/"), "serving");
        println!("DILUX_LISTENING http://{addr}/");
        tokio::spawn(async move {
            if let Err(e) = server::serve(app, listener).await {
                tracing::error!(error = %e, "server stopped");
                std::process::exit(1);
            }
        });
    }

    if let Some(path) = &args.job_runner {
        let (manifest, _) = dilux_dumper_host::manifest::Manifest::load(&args.manifest)?;
        let vars = manifest.resolve_app_variables(&env)?;
        let conn = vars.get("storage_connection_string").context("the worker needs the storage_connection_string variable")?;
        let account = Account::from_connection_string(conn)?;
        let storage = Storage::new(account);
        let (engine, linker) = runtime::engine_and_linker()?;
        let component = runtime::load_component(&engine, path)?;
        // The job-runner sees the application variables (it is not a Spin component) and may reach
        // only the storage account's endpoints.
        let outbound = dilux_dumper_host::outbound::OutboundPolicy {
            allowed: [&storage.account.table_endpoint, &storage.account.blob_endpoint, &storage.account.queue_endpoint]
                .iter()
                .map(|e| dilux_dumper_host::outbound::AllowedHost::origin_of(e))
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)?,
            component: "job-runner".into(),
        };
        let guest = runtime::GuestConfig {
            name: "job-runner".into(),
            variables: Arc::new(vars),
            outbound,
            files: vec![],
            dumper: Some(Arc::new(runtime::Dumper { storage: storage.clone(), options: DumpOptions::default() })),
        };
        let mut opts = worker::WorkerOptions::default();
        if let Some(c) = env.get("DILUX_WORKER_CONCURRENCY").and_then(|c| c.parse().ok()) {
            opts.concurrency = c;
        }
        if let Some(ms) = env.get("DILUX_WORKER_IDLE_POLL_MS").and_then(|c| c.parse::<u64>().ok()).filter(|ms| *ms >= 10) {
            opts.idle_poll = std::time::Duration::from_millis(ms);
        }
        if let Some(s) = env.get("DILUX_WORKER_LEASE_SECS").and_then(|c| c.parse::<u64>().ok()).filter(|s| *s >= 1) {
            opts.lease = std::time::Duration::from_secs(s);
        }
        let w = Arc::new(worker::Worker::new(storage, &linker, &component, guest, opts)?);
        tracing::info!("worker started");
        w.run().await;
    } else {
        std::future::pending::<()>().await;
    }
    Ok(())
}
