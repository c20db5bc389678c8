//! `dilux-dumper-host`: runs the Dilux app locally (every Spin component of `spin.toml`), the backup
//! worker (the job-runner guest plus the dump capability) and the probe endpoint the API calls for
//! connection tests.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use dilux_azure::Account;
use dilux_domain::probe::PROBE_PATH;
use dilux_dumper_host::crypt::Keys;
use dilux_dumper_host::dump::DumpOptions;
use dilux_dumper_host::manifest::Manifest;
use dilux_dumper_host::probe_service::{self, ProbeService};
use dilux_dumper_host::{host, server, storage::Storage, worker};
use tokio::net::TcpListener;

const USAGE: &str = "\
usage: dilux-dumper-host [--manifest spin.toml] [--listen ADDR] [--job-runner job_runner.wasm]
                         [--no-serve] [--probe-listen ADDR] [--notifiers notifiers.toml]

  --manifest PATH      the Spin manifest (default spin.toml)
  --listen ADDR        where the app is served, its probe endpoint and /metrics included (default 127.0.0.1:3000)
  --job-runner PATH    also run the backup worker with this job-runner component
  --no-serve           do not serve the app (in production Spin serves it); the probe endpoint
                       /internal/dumper/probe is still served, on --probe-listen, else on --listen
  --probe-listen ADDR  serve the probe endpoint and /metrics (Bearer dumper_token) on ADDR, on its own
                       (default: the environment's DILUX_PROBE_LISTEN)
  --notifiers PATH     run the notifier plug-ins this file lists for plug-in channels
                       (default: the environment's DILUX_NOTIFIERS)

Variables come from SPIN_VARIABLE_<NAME> environment variables, as with Spin.
Encrypted backups are made and restored with the age identities in DILUX_AGE_IDENTITY_FILE (a file as
age-keygen writes it; several lines for old keys) or DILUX_AGE_IDENTITY (the same text).";

struct Args {
    manifest: PathBuf,
    listen: String,
    job_runner: Option<PathBuf>,
    serve: bool,
    probe_listen: Option<String>,
    notifiers: Option<PathBuf>,
}

impl Args {
    fn parse(mut it: impl Iterator<Item = String>, env: &HashMap<String, String>) -> anyhow::Result<Self> {
        let mut a = Args {
            manifest: "spin.toml".into(),
            listen: "127.0.0.1:3000".into(),
            job_runner: None,
            serve: true,
            probe_listen: None,
            notifiers: env.get("DILUX_NOTIFIERS").filter(|v| !v.is_empty()).map(PathBuf::from),
        };
        while let Some(arg) = it.next() {
            let mut val = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--manifest" => a.manifest = val("--manifest")?.into(),
                "--listen" => a.listen = val("--listen")?,
                "--job-runner" => a.job_runner = Some(val("--job-runner")?.into()),
                "--no-serve" => a.serve = false,
                "--probe-listen" => a.probe_listen = Some(val("--probe-listen")?),
                "--notifiers" => a.notifiers = Some(val("--notifiers")?.into()),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument `{other}` (try --help)"),
            }
        }
        a.probe_listen = a.probe_listen.or_else(|| env.get("DILUX_PROBE_LISTEN").filter(|v| !v.is_empty()).cloned());
        Ok(a)
    }

    /// Where the probe gets a listener of its own: a worker without the app always serves it.
    fn probe_address(&self) -> Option<String> {
        self.probe_listen.clone().or_else(|| (!self.serve).then(|| self.listen.clone()))
    }
}

async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dilux_dumper_host::heap::bound();
    let filter = tracing_subscriber::EnvFilter::try_from_env("DILUX_LOG")
        .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let mut env: HashMap<String, String> = std::env::vars().collect();
    let args = Args::parse(std::env::args().skip(1), &env)?;
    let mut dump_options = DumpOptions::from_lookup(|name| env.get(name).cloned());
    let keys = Keys::from_lookup(|name| env.get(name).cloned()).map_err(anyhow::Error::msg)?;
    if !keys.is_empty() {
        tracing::info!(recipients = ?keys.recipients(), "age identities for encrypted backups");
    }
    dump_options.keys = Arc::new(keys);

    let app_listener = if args.serve { Some(bind(&args.listen).await?) } else { None };
    if let Some(listener) = &app_listener {
        // Locally the API reaches this very process for connection tests, wherever it listens.
        let url = format!("http://{}", listener.local_addr()?);
        env.entry("SPIN_VARIABLE_DUMPER_URL".into()).or_insert(url);
    }
    let (manifest, _) = Manifest::load(&args.manifest)?;
    let vars = manifest.resolve_app_variables(&env)?;
    if let Some(listener) = &app_listener {
        // Dev sign-in lets anyone be admin: only for whoever can reach a loopback listener.
        let dev = vars.get("auth_mode").map(String::as_str) == Some("dev");
        let anywhere = vars.get("dev_auth_anywhere_insecure").map(String::as_str) == Some("true");
        if dev && !anywhere && !listener.local_addr()?.ip().is_loopback() {
            anyhow::bail!(
                "auth_mode is dev, which lets anyone sign in as admin, and --listen {} is not a loopback address; \
                 listen on 127.0.0.1, use auth_mode=entra, or set SPIN_VARIABLE_DEV_AUTH_ANYWHERE_INSECURE=true",
                args.listen
            );
        }
    }
    let storage = match vars.get("storage_connection_string") {
        Some(conn) => Some(Storage::new(Account::from_connection_string(conn)?)),
        None => None,
    };
    let mut probe = ProbeService::new(vars.get("dumper_token").cloned(), dump_options.clone())?;
    if let (Some(storage), Some(_)) = (&storage, &args.job_runner) {
        let queues = vec![dilux_domain::JOBS_QUEUE.into(), dilux_domain::restore::RESTORE_JOBS_QUEUE.into()];
        probe = probe.with_queues(storage.clone(), queues);
    }
    if let Some(path) = &args.notifiers {
        let notifiers = host::notifier::Notifiers::load(path)?;
        tracing::info!(file = %path.display(), plugins = ?notifiers.names(), "notifier plug-ins");
        probe = probe.with_notifiers(Arc::new(notifiers));
    }
    let probe = Arc::new(probe);

    if let Some(listener) = app_listener {
        let addr = listener.local_addr()?;
        let app = Arc::new(server::App::load(&args.manifest, &env, probe.clone())?);
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

    if let Some(probe_addr) = args.probe_address() {
        let listener = bind(&probe_addr).await?;
        let addr = listener.local_addr()?;
        tracing::info!(url = %format!("http://{addr}{PROBE_PATH}"), "serving the probe endpoint");
        println!("DILUX_PROBE_LISTENING http://{addr}/");
        let probe = probe.clone();
        tokio::spawn(async move {
            if let Err(e) = probe_service::serve(probe, listener).await {
                tracing::error!(error = %e, "probe endpoint stopped");
                std::process::exit(1);
            }
        });
    }

    let Some(path) = &args.job_runner else {
        std::future::pending::<()>().await;
        return Ok(());
    };
    let storage = storage.context("the worker needs the storage_connection_string variable")?;
    if dilux_dumper_host::test_hooks::arm(&env, storage.account.is_local_emulator()) {
        tracing::warn!("DILUX_TEST_* fault injection ignored: it works only against the local storage emulator");
    }
    let (engine, linker) = host::engine_and_linker()?;
    let component = host::load_component(&engine, path)?;
    // The job-runner (not a Spin component) sees only the application variables it needs and may reach
    // only the storage account's endpoints.
    let a = &storage.account;
    let outbound = dilux_dumper_host::outbound::OutboundPolicy {
        allowed: [&a.table_endpoint, &a.blob_endpoint, &a.queue_endpoint]
            .iter()
            .map(|e| dilux_dumper_host::outbound::AllowedHost::origin_of(e))
            .collect::<Result<_, _>>()?,
        component: "job-runner".into(),
    };
    let guest = host::GuestConfig {
        name: "job-runner".into(),
        variables: Arc::new(host::job_runner_variables(&vars)),
        outbound,
        files: vec![],
        dumper: Some(Arc::new(host::Dumper { storage: storage.clone(), options: dump_options })),
    };
    // Backups and restores each have their queue, leased under the same rules by the same guest.
    let backups = worker::WorkerOptions::from_env(&env);
    let restores = worker::WorkerOptions { queue: dilux_domain::restore::RESTORE_JOBS_QUEUE.into(), ..backups.clone() };
    let mut running = tokio::task::JoinSet::new();
    for options in [backups, restores] {
        let queue = options.queue.clone();
        let w = Arc::new(worker::Worker::new(storage.clone(), &linker, &component, guest.clone(), options)?);
        tracing::info!(queue = %queue, "worker started");
        running.spawn(w.run());
    }
    running.join_next().await;
    Ok(())
}
