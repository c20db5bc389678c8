//! The web UI in a real browser (Debian's headless Chromium, driven by playwright-core) against the
//! running app, Azurite and a real PostgreSQL: sign in, add a server and a database, back it up, watch
//! it complete, download it, restore it into a new database; a viewer finds no controls that change
//! anything. Screenshots of every
//! page land in target/ui-screenshots (the Entra sign-in's in target/ui-screenshots-entra).

use std::process::Command;

use anyhow::{ensure, Context, Result};
use dilux_e2e::{root, App, Azurite, Postgres};

const PG_PASSWORD: &str = "ui-Br0wser-s3cret";

#[test]
fn a_backup_from_the_browser_and_a_read_only_viewer() -> Result<()> {
    let az = std::thread::spawn(Azurite::start);
    let pg = Postgres::start(PG_PASSWORD)?;
    let az = az.join().unwrap()?;
    pg.sql("postgres", "CREATE DATABASE shop")?;
    pg.sql(
        "shop",
        "CREATE TABLE orders (id int PRIMARY KEY, note text); \
         INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 1000) g;",
    )?;
    let app = App::start(&az.connection_string)?;
    let shots = root().join("target/ui-screenshots");
    // Only this run's screenshots count.
    let _ = std::fs::remove_dir_all(&shots);
    let work = dilux_e2e::tempdir("ui-flow");
    let download = work.join("download");
    let out = Command::new("node")
        .arg(root().join("tests/ui/flow.mjs"))
        .env("DILUX_URL", &app.url)
        .env("DILUX_ROOT", root())
        .env("PG_PORT", pg.port.to_string())
        .env("PG_PASSWORD", PG_PASSWORD)
        .env("SHOTS", &shots)
        .env("DOWNLOAD_TO", &download)
        .output()
        .context("cannot run node (scripts/dev.sh or scripts/test.sh installs what the UI test needs)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    ensure!(
        out.status.success() && stdout.contains("ui-flow ok"),
        "the browser flow failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [
        "signin",
        "dashboard",
        "dashboard-dark",
        "servers-add",
        "servers-discover",
        "databases",
        "backups",
        "status",
        "policies",
        "policies-edit",
        "storage",
        "users",
        "audit",
        "settings",
        "viewer-servers",
        "viewer-databases",
        "viewer-backups",
        "viewer-policies",
        "restore-dialog",
        "restore-done",
        "restores",
        "restore-replace",
    ] {
        let png =
            std::fs::read(shots.join(format!("{page}.png"))).with_context(|| format!("no screenshot of {page}"))?;
        ensure!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{page}.png is not a real screenshot");
    }
    // The downloaded file is the whole backup: it decompresses to its end (zstd checks every frame) and
    // holds every row.
    let sql = String::from_utf8(dilux_e2e::decompress(&std::fs::read(&download)?)?)?;
    ensure!(sql.contains("COPY public.orders") && sql.contains("1000\torder 1000\n"), "the download holds the rows");
    ensure!(sql.contains("PostgreSQL database dump complete"), "the download is the complete dump");
    // What the browser restored is really there, row for row.
    let count = |db: &str| pg.sql(db, "SELECT count(*), sum(length(note)) FROM orders");
    ensure!(count("shop_from_ui")? == count("shop")?, "the restore from the browser holds every row");
    let kept = pg.sql("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'shop_before_restore_%'")?;
    ensure!(kept.trim() == "1", "the replaced original is kept aside: {kept}");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// The Notifications page: an admin adds a webhook channel and a plug-in channel, sends tests that a local
/// receiver takes, and sees them delivered in the log; a refused channel says which field; a viewer gets no
/// controls.
#[test]
fn a_channel_and_its_test_send_from_the_browser() -> Result<()> {
    let az = Azurite::start()?;
    let hooks = dilux_e2e::HookReceiver::start()?;
    let notifiers = dilux_e2e::notifiers_file(&[hooks.port])?;
    let app = App::start_without_worker(
        &az.connection_string,
        &[("DILUX_TICKS", "off"), ("DILUX_NOTIFIERS", notifiers.to_str().unwrap())],
    )?;
    let shots = dilux_e2e::tempdir("ui-notifications");
    let out = Command::new("node")
        .arg(root().join("tests/ui/notifications.mjs"))
        .env("DILUX_URL", &app.url)
        .env("DILUX_ROOT", root())
        .env("HOOK_URL", hooks.url("/hook"))
        .env("DISCORD_URL", hooks.url("/discord"))
        .env("SHOTS", &shots)
        .output()
        .context("cannot run node")?;
    let _ = std::fs::remove_dir_all(&shots);
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && stdout.contains("notifications ok"),
        "the notifications page check failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = hooks.received("/hook");
    ensure!(got.len() == 1 && got[0].json()["event"]["kind"] == "test", "the receiver got the test: {got:?}");
    ensure!(got[0].header("x-dilux-signature").is_some_and(|s| s.starts_with("sha256=")), "it is signed");
    let posted = hooks.received("/discord");
    ensure!(posted.len() == 1 && posted[0].json()["embeds"][0]["fields"][0]["value"] == "test", "{posted:?}");
    Ok(())
}

/// More backups on one day than a page of history holds (the dashboard once counted the newest 200 rows):
/// the chart and "Backups today" show every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_counts_every_backup_of_a_busy_day() -> Result<()> {
    use dilux_domain::{BackupJob, BackupResult, EngineType, TriggeredBy};
    let az = Azurite::start()?;
    let app = App::start_without_worker(&az.connection_string, &[("DILUX_TICKS", "off")])?;
    let storage =
        dilux_dumper_host::storage::Storage::new(dilux_azure::Account::from_connection_string(&az.connection_string)?);
    // Noon yesterday and the first minutes of today (UTC), so that no run crosses a day with them.
    let today = chrono::Utc::now().date_naive();
    let noon = (today - chrono::Duration::days(1)).and_hms_opt(12, 0, 0).unwrap().and_utc();
    let row = |i: i64, at: chrono::DateTime<chrono::Utc>, ok: bool| {
        let job = BackupJob::new(&format!("db-{}", i % 40), EngineType::Postgresql, TriggeredBy::Scheduler, vec![], at);
        let mut r = BackupResult::pending(&job, "db", "db", "engine");
        if ok {
            r.complete(at, 1000, 4000, "0".repeat(64));
        } else {
            r.fail(at, dilux_domain::ErrorClass::Unreachable, "down");
        }
        r
    };
    let mut rows: Vec<BackupResult> =
        (0..230).map(|i| row(i, noon + chrono::Duration::seconds(i), i % 23 != 0)).collect();
    let midnight = today.and_hms_opt(0, 0, 0).unwrap().and_utc();
    rows.extend((0..7).map(|i| row(i, midnight + chrono::Duration::seconds(i), true)));
    dilux_e2e::store_history(&storage, &rows).await?;
    // Its own folder: the other browser test clears target/ui-screenshots when it starts.
    let shots = dilux_e2e::tempdir("ui-dashboard");
    let out = Command::new("node")
        .arg(root().join("tests/ui/dashboard.mjs"))
        .env("DILUX_URL", &app.url)
        .env("DILUX_ROOT", root())
        .env("SHOTS", &shots)
        .env("BUSY_DAY", noon.format("%Y-%m-%d").to_string())
        .env("BUSY_COMPLETED", "220")
        .env("BUSY_FAILED", "10")
        .env("TODAY_TOTAL", "7")
        .output()
        .context("cannot run node")?;
    let _ = std::fs::remove_dir_all(&shots);
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && stdout.contains("dashboard ok"),
        "the dashboard check failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Entra ID sign-in in the browser, against a MOCK identity provider (tests/ui/entra.mjs; Entra ID
/// cannot run here): the authorization-code flow with PKCE, and a forged callback refused.
#[test]
fn entra_sign_in_with_pkce_against_a_mock_identity_provider() -> Result<()> {
    let az = Azurite::start()?;
    let mock_port = dilux_e2e::free_port();
    let authority = format!("http://127.0.0.1:{mock_port}");
    let app = App::start_with(
        &az.connection_string,
        &root().join("spin.toml"),
        &[
            ("SPIN_VARIABLE_AUTH_MODE", "entra"),
            ("SPIN_VARIABLE_ENTRA_TENANT_ID", "tenant-ui"),
            ("SPIN_VARIABLE_ENTRA_CLIENT_ID", "client-ui"),
            ("SPIN_VARIABLE_ENTRA_AUTHORITY", &authority),
            ("SPIN_VARIABLE_ENTRA_FIRST_ADMIN", "oid-dana"),
        ],
    )?;
    // Its own folder, cleared first: the flow test clears target/ui-screenshots as it starts (the two run side
    // by side), and a PNG left by an earlier run must not pass for this run's.
    let shots = root().join("target/ui-screenshots-entra");
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new("node")
        .arg(root().join("tests/ui/entra.mjs"))
        .env("DILUX_URL", &app.url)
        .env("DILUX_ROOT", root())
        .env("MOCK_PORT", mock_port.to_string())
        .env("TENANT", "tenant-ui")
        .env("CLIENT", "client-ui")
        .env("SHOTS", &shots)
        .output()
        .context("cannot run node")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    ensure!(
        out.status.success() && stdout.contains("ui-entra ok"),
        "the Entra sign-in flow failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in ["signin-entra", "entra-dashboard"] {
        ensure!(
            std::fs::read(shots.join(format!("{page}.png"))).is_ok_and(|p| p.starts_with(b"\x89PNG")),
            "no screenshot of {page}"
        );
    }
    Ok(())
}
