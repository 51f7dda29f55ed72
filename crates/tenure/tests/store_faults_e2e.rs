//! A data folder whose disk fills during an apply and under `tenure serve` (issue 24, point
//! 1): nothing is reported done that was not kept, the service says it is not ready and
//! answers 503 while the store refuses writes, recovers by itself when there is room, and the
//! next run converges: one account per worker, every create audited. The folder is a small
//! tmpfs the test mounts (root, as CI runs; said loudly when it cannot).

mod common;

use common::api::*;
use common::env::*;
use serde_json::Value;
use std::process::Command;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Team joins the audit keeps as done, against the sandbox's memberships: equal when every
/// join made is audited once.
async fn joins_audited_and_made(env: &Env, sb: &common::Sandbox) -> (usize, usize) {
    let audited = env
        .ok(&["audit", "export", "--format", "ndjson"])
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["action"] == "team_add")
        .filter(|v| v["outcome"].as_str().is_some_and(|o| !o.starts_with("failed") && !o.starts_with("not tried")))
        .count();
    let made = accounts(sb).await.values().map(|u| u["teams"].as_array().map_or(0, Vec::len)).sum();
    (audited, made)
}

/// A PostgreSQL tablespace on a tmpfs. Dropped before the tmpfs goes, even when the test fails:
/// a server whose tablespace files vanish under it fails every checkpoint, then stops.
struct Space {
    mount: Mount,
    admin: String,
    schema: String,
    name: String,
}

impl Drop for Space {
    fn drop(&mut self) {
        let _ = Command::new("mount").args(["-o", "remount,size=262144k"]).arg(&self.mount.0).status();
        let (admin, schema, space) = (self.admin.clone(), self.schema.clone(), self.name.clone());
        // Its own runtime on its own thread: a drop cannot await.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let pool = sqlx::AnyPool::connect(&admin).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&pool).await?;
                sqlx::query(&format!("DROP TABLESPACE IF EXISTS {space}")).execute(&pool).await?;
                pool.close().await;
                Ok::<(), sqlx::Error>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            other => {
                eprintln!(
                    "tablespace {} not dropped ({other:?}): its tmpfs stays mounted at {}",
                    self.name,
                    self.mount.0.display()
                );
                std::mem::forget(std::mem::replace(&mut self.mount, Mount(std::path::PathBuf::new())));
            }
        }
    }
}

/// Room again: the service is ready by itself, and the admin's upload of `rows` is taken.
async fn room_again(m: &Mount, base: &str, rows: &[String]) {
    resize(m, 262144);
    let mut ok = false;
    for _ in 0..50 {
        if reqwest::get(format!("{base}/readyz")).await.unwrap().status().as_u16() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "ready again once the disk has room");
    let (admin, r) = Client::login(base, "admin", "admin has a long password").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let up = admin.send("POST", "/api/v1/hr/uploads", Some(("text/csv", csv(rows)))).await;
    assert_eq!(up.status, 200, "{}", up.text);
}

fn resize(m: &Mount, kib: u64) {
    let s = Command::new("mount").args(["-o", &format!("remount,size={kib}k")]).arg(&m.0).status().unwrap();
    assert!(s.success());
}

fn used_kib(m: &Mount) -> u64 {
    let out = Command::new("df").args(["-k", "--output=used"]).arg(&m.0).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_nothing_and_nothing_unkept_is_reported_done() {
    let dir = common::tempdir("disk-full").join("mnt");
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=65536k", "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: disk full e2e: cannot mount a small tmpfs (needs root)");
        return;
    }
    let m = Mount(dir.clone());
    let sb = common::spawn(&[]);
    let env = Env::connect_in(&sb, dir.join("data"), "", "", None);
    let pw = env.dir.join("pw");
    std::fs::write(&pw, "admin has a long password").unwrap();
    env.ok(&["user", "add", "admin", "--role", "admin", "--password-file", pw.to_str().unwrap()]);
    let now = "2026-06-01T12:00:00Z";
    let rows = population(3000);
    env.load("w.csv", &rows, now, &[]);
    // A few hundred KiB left: the apply meets the full disk part way.
    resize(&m, used_kib(&m) + 400);
    let (code, out) = env.tenure(&["apply", "--yes", "--as-of", now]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("the store refused writes") && out.contains("is the disk full?"), "{out}");

    // The service while the disk is full: not ready, and an upload is refused, not taken.
    let run = env.start(&["serve", "--listen", "127.0.0.1:0", "--interval", "0"]);
    let base = run.address().await;
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 503, "{}", ready.text().await.unwrap());
    let (admin, r) = Client::login(&base, "admin", "admin has a long password").await;
    // A login writes a session: refused too, as unavailable.
    if r.status == 200 {
        let up = admin.send("POST", "/api/v1/hr/uploads", Some(("text/csv", csv(&rows[..10])))).await;
        assert_eq!(up.status, 503, "{}", up.text);
    } else {
        assert_eq!(r.status, 503, "{}", r.text);
    }
    // Room again: ready by itself, and the next run converges.
    room_again(&m, &base, &rows).await;
    drop(run);
    let out = env.ok(&["apply", "--yes", "--as-of", now]);
    assert!(out.contains("failed 0"), "{out}");
    let plan = env.plan(now);
    let acting: Vec<&Value> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| !matches!(a["kind"].as_str(), Some("skip") | Some("no_change")))
        .collect();
    assert!(acting.is_empty(), "in step after the run: {acting:?}");
    let accounts = accounts(&sb).await;
    let mut ext: Vec<&str> = accounts.values().map(|u| u["externalId"].as_str().unwrap()).collect();
    ext.sort();
    ext.dedup();
    assert_eq!(ext.len(), accounts.len(), "no worker has two accounts");
    let creates = env
        .ok(&["audit", "export", "--format", "ndjson"])
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["action"] == "create"))
        .count();
    assert_eq!(creates, accounts.len(), "every account's create is audited once");
    let (audited, made) = joins_audited_and_made(&env, &sb).await;
    assert!(made > 0);
    assert_eq!(audited, made, "every team join is audited once");
    let verify = env.ok(&["audit", "verify"]);
    assert!(verify.contains("intact"), "{verify}");
}

#[test]
fn a_read_only_store_is_said_at_once_with_its_cause() {
    // The folder's name must not say "read-only": the message has to.
    let dir = common::tempdir("rofs").join("mnt");
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8192k", "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: read-only store: cannot mount a tmpfs (needs root)");
        return;
    }
    let m = Mount(dir.clone());
    let env = Env { dir: dir.join("data"), database_url: None };
    env.init();
    env.ok(&["user", "list"]);
    // As a process that did not close the store leaves it: with a `-wal` and `-shm` beside it,
    // SQLite opens a read-only file and even grants a write transaction, so it alone may not say.
    for side in ["tenure.db-wal", "tenure.db-shm"] {
        let f = env.dir.join(side);
        if !f.exists() {
            std::fs::write(&f, b"").unwrap();
        }
    }
    let s = Command::new("mount").args(["-o", "remount,ro"]).arg(&m.0).status().unwrap();
    assert!(s.success());
    let (code, out) = env.tenure(&["audit", "verify"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("read-only") && out.contains("tenure.db"), "the cause and the file, at once: {out}");
    assert!(!out.contains("timed out"), "{out}");
}

/// Pushes every 100 ms while the scheduler runs: writers wait for each other, so no run and no
/// push fails with "database is locked" (issue 24, point 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_under_a_running_scheduler_never_meet_a_locked_store() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "locked", "");
    env.load("w.csv", &population(200), "2026-06-01T12:00:00Z", &[]);
    let secret = "push-secret-0123456789abcdef";
    let f = env.dir.join("secret");
    std::fs::write(&f, secret).unwrap();
    env.ok(&["hr", "push-secret", "--secret-file", f.to_str().unwrap()]);
    let run = env.start(&["serve", "--listen", "127.0.0.1:0", "--interval", "1"]);
    let base = run.address().await;
    let mut refused = vec![];
    for i in 0..150 {
        let body = serde_json::json!({"event_id": format!("lock-{i}"), "worker": {"employee_id": "10001",
            "title": format!("Staff {}", i % 2)}})
        .to_string();
        let r = common::push_signed(&base, secret, body).await;
        if !r.status().is_success() && r.status().as_u16() != 422 {
            refused.push(format!("{} {}", r.status(), r.text().await.unwrap_or_default()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let said = run.lines.lock().unwrap().join("\n");
    drop(run);
    assert!(refused.is_empty(), "pushes refused: {refused:?}");
    assert!(!said.contains("locked"), "{said}");
    let runs = env.ok(&["runs", "--json", "--limit", "1000"]);
    let runs: Value = serde_json::from_str(&runs).unwrap();
    assert!(runs.as_array().unwrap().len() >= 5, "the scheduler ran meanwhile: {runs}");
    for r in runs.as_array().unwrap() {
        assert_eq!(r["summary"]["failed"], 0, "{r}");
    }
}

/// On PostgreSQL (issue 24, point 1): statements that time out (a lock held past tenure's
/// `statement_timeout`) and backends terminated in the middle of a run. What the run reports
/// done is exactly what the store kept; the next run resolves the rest: one account per worker,
/// every create audited once, the chain intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_timeouts_and_terminated_backends_lose_nothing() {
    let Some(pg) = postgres("pg_faults").await else { return };
    // The sandbox answers slowly enough for the run to last a few seconds.
    let sb = common::spawn(&["--latency-ms", "40"]);
    let app = format!("tenure_pgfaults_{}", std::process::id());
    let url = format!("{}%20-c%20statement_timeout%3D300&application_name={app}", pg.url);
    let env = Env::connect_to(&sb, "pg-faults", "", "", Some(url));
    let now = "2026-06-01T12:00:00Z";
    env.load("w.csv", &population(3000), now, &[]);
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&pg.admin).await.unwrap();

    let child = env
        .command()
        .args(["apply", "--yes", "--json", "--as-of", now])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let done = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap());
    wait_for_users(&sb, None, 300, 20, 1500).await;
    // Outcomes cannot be written for two seconds: each write times out.
    let mut lock = admin.begin().await.unwrap();
    sqlx::query(&format!("LOCK TABLE {}.links IN ACCESS EXCLUSIVE MODE", pg.schema)).execute(&mut *lock).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    lock.rollback().await.unwrap();
    // Then tenure's sessions are cut, a few times over.
    let mut cut = 0;
    for _ in 0..4 {
        let n = sqlx::query(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'"
        ))
        .fetch_all(&admin)
        .await
        .unwrap()
        .len();
        cut += n;
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    let out = done.await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(cut > 0, "some sessions were cut");
    let creates_kept = |env: &Env| {
        env.ok(&["audit", "export", "--format", "ndjson"])
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            // A create the journal refused is audited as failed, not tried: not done.
            .filter(|v| v["action"] == "create" && v["outcome"].as_str().is_some_and(|o| !o.starts_with("failed")))
            .count()
    };
    // A run that ended with a summary reports done only what the store kept.
    if let Ok(summary) = serde_json::from_str::<Value>(&text) {
        let reported = summary["by_kind"]["create"].as_u64().unwrap_or(0) as usize;
        assert_eq!(reported, creates_kept(&env), "creates reported done are the creates kept: {summary}");
        assert!(summary["failed"].as_u64().unwrap() > 0, "the timeouts failed some outcomes: {summary}");
        assert_ne!(out.status.code(), Some(0), "{summary}");
    } else {
        assert_ne!(out.status.code(), Some(0), "{text}");
    }
    let o = env.command().args(["apply", "--yes", "--json", "--as-of", now]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(again["failed"], 0, "{again}");
    assert!(again["recovered"].as_u64().unwrap() > 0, "what was in flight is resolved: {again}");
    let plan = env.plan(now);
    let acting = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| !matches!(a["kind"].as_str(), Some("skip") | Some("no_change")))
        .count();
    assert_eq!(acting, 0, "in step");
    let accounts = accounts(&sb).await;
    let mut ext: Vec<&str> = accounts.values().map(|u| u["externalId"].as_str().unwrap()).collect();
    ext.sort();
    ext.dedup();
    assert_eq!(ext.len(), accounts.len(), "no worker has two accounts");
    assert_eq!(creates_kept(&env), accounts.len(), "every account's create is audited once");
    let (audited, made) = joins_audited_and_made(&env, &sb).await;
    assert!(made > 0);
    assert_eq!(audited, made, "every team join is audited once");
    assert!(env.ok(&["audit", "verify"]).contains("intact"));
    admin.close().await;
}

/// PostgreSQL's disk fills (issue 24, point 1): tenure's tables live in a tablespace on a small
/// tmpfs the test mounts (`default_tablespace` on tenure's sessions), so the database server
/// itself answers "could not extend file: No space left on device" part way through an apply.
/// The run says the store refused writes and fails; an upload meanwhile is refused or kept,
/// never said taken and lost; with room again the service is ready and the next run converges. Needs root and a local server (said loudly otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_disk_full_loses_nothing_and_nothing_unkept_is_reported_done() {
    let Some(pg) = postgres("pg_disk_full").await else { return };
    let uid = Command::new("id").args(["-u", "postgres"]).output().ok().filter(|o| o.status.success());
    let dir = common::tempdir("pg-disk-full").join("space");
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = uid.is_some_and(|uid| {
        let uid = String::from_utf8_lossy(&uid.stdout).trim().to_string();
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size=65536k,uid={uid},mode=0700"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success())
    });
    if !mounted {
        eprintln!("SKIPPED: PostgreSQL disk full: cannot mount a tmpfs for the server (needs root and a local server)");
        return;
    }
    // The temp folder's parents must let the server reach its tablespace.
    let mut up = dir.parent();
    while let Some(p) = up.filter(|p| p.starts_with(std::env::temp_dir()) && *p != std::env::temp_dir()) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
        up = p.parent();
    }
    let mount = Mount(dir.clone());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&pg.admin).await.unwrap();
    let space = format!("tenure_small_{}", std::process::id());
    sqlx::query(&format!("CREATE TABLESPACE {space} LOCATION '{}'", dir.display())).execute(&pool).await.unwrap();
    pool.close().await;
    let guard = Space { mount, admin: pg.admin.clone(), schema: pg.schema.clone(), name: space.clone() };
    let m = &guard.mount;
    let sb = common::spawn(&[]);
    let url = format!("{}%20-c%20default_tablespace%3D{space}", pg.url);
    let env = Env::connect_to(&sb, "pg-disk-full", "", "", Some(url));
    // The first admin is made before the disk fills: `serve` will not start without one.
    let pw = env.dir.join("pw");
    std::fs::write(&pw, "admin has a long password").unwrap();
    env.ok(&["user", "add", "admin", "--role", "admin", "--password-file", pw.to_str().unwrap()]);
    let now = "2026-06-01T12:00:00Z";
    let rows = population(3000);
    env.load("w.csv", &rows, now, &[]);
    resize(m, used_kib(m) + 400);
    let (code, out) = env.tenure(&["apply", "--yes", "--as-of", now]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("the store refused writes") && out.contains("is the disk full?"), "{out}");
    let run = env.start(&["serve", "--listen", "127.0.0.1:0", "--interval", "0"]);
    let base = run.address().await;
    // PostgreSQL keeps small writes (readiness's probe, a session) in pages it already has, so
    // the service may be ready; what matters is that a load it says it took was taken.
    let (admin, r) = Client::login(&base, "admin", "admin has a long password").await;
    if r.status == 200 {
        let mut changed = rows.clone();
        changed[0] = changed[0].replace("Staff", "Lead");
        let up = admin.send("POST", "/api/v1/hr/uploads", Some(("text/csv", csv(&changed)))).await;
        if up.status == 200 {
            let id = up.json()["load_id"].as_str().unwrap().to_string();
            let loads = admin.send("GET", "/api/v1/hr/loads", None).await;
            assert!(loads.json().as_array().unwrap().iter().any(|l| l["id"] == id.as_str()), "{}", loads.text);
        } else {
            assert_eq!(up.status, 503, "{}", up.text);
        }
    } else {
        assert_eq!(r.status, 503, "{}", r.text);
    }
    room_again(m, &base, &rows).await;
    drop(run);
    let out = env.ok(&["apply", "--yes", "--as-of", now]);
    assert!(out.contains("failed 0"), "{out}");
    let accounts = accounts(&sb).await;
    let mut ext: Vec<&str> = accounts.values().map(|u| u["externalId"].as_str().unwrap()).collect();
    ext.sort();
    ext.dedup();
    assert_eq!(ext.len(), accounts.len(), "no worker has two accounts");
    let creates = env
        .ok(&["audit", "export", "--format", "ndjson"])
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        // The audit may keep a create the journal refused, as failed and not tried.
        .filter(|v| v["action"] == "create" && v["outcome"].as_str().is_some_and(|o| !o.starts_with("failed")))
        .count();
    assert_eq!(creates, accounts.len(), "every account's create is audited once as done");
    let (audited, made) = joins_audited_and_made(&env, &sb).await;
    assert_eq!(audited, made, "every team join is audited once");
    assert!(env.ok(&["audit", "verify"]).contains("intact"));
    drop(guard);
}

/// Issue 30 point 5: a command given a data folder without a store says so (exit 1) and makes
/// nothing; only `tenure init` (or `serve --init`) makes a store and its key; a store whose
/// key is gone is refused, and no new key is written beside it.
#[test]
fn a_wrong_folder_is_said_not_made_and_a_missing_key_is_never_replaced() {
    let root = common::tempdir("wrong-folder");
    let env = Env { dir: root.join("typo"), database_url: None };
    for args in [&["status"][..], &["runs"], &["user", "list"], &["plan"], &["audit", "verify"], &["hr", "loads"]] {
        let (code, out) = env.tenure(args);
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(out.contains("no tenure store in") && out.contains("tenure init"), "{args:?}: {out}");
    }
    let (code, out) = env.tenure(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 1, "serve without --init: {out}");
    assert!(!env.dir.join("tenure.db").exists() && !env.dir.join("master.key").exists(), "nothing was made");

    let out = env.ok(&["init"]);
    assert!(out.contains("a new tenure store in") && out.contains("master key"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.dir.join("master.key")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let key = std::fs::read(env.dir.join("master.key")).unwrap();
    let out = env.ok(&["init"]);
    assert!(out.contains("already") && out.contains("nothing was made"), "{out}");
    assert_eq!(std::fs::read(env.dir.join("master.key")).unwrap(), key, "init again keeps the key");
    env.ok(&["status"]);

    // The key is lost: every door that needs it refuses, and none writes a new one.
    std::fs::remove_file(env.dir.join("master.key")).unwrap();
    let token = root.join("token");
    std::fs::write(&token, "a-token").unwrap();
    let tries: [&[&str]; 4] = [
        &[
            "connection",
            "add",
            "--name",
            "c",
            "--url",
            "https://acme.monday.com/scim/v2/",
            "--token-file",
            token.to_str().unwrap(),
        ],
        &["serve", "--listen", "127.0.0.1:0"],
        &["serve", "--init", "--listen", "127.0.0.1:0"],
        &["init"],
    ];
    for args in tries {
        let (code, out) = env.tenure(args);
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(out.contains("no master key in") && out.contains("restore"), "{args:?}: {out}");
        assert!(!env.dir.join("master.key").exists(), "{args:?} wrote a new key");
    }
}

/// Issue 30 point 1: a backup taken while `tenure serve` applies runs restores with every user,
/// audit record and run it held; the key comes from the file kept apart or from the backup
/// itself under a passphrase; a restore goes into an empty folder only and leaves nothing
/// behind when it fails; the restored store's scheduled runs wait until a person confirms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_whole_and_waits_for_a_person() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "backup", "");
    env.load("w.csv", &population(300), "2026-06-01T12:00:00Z", &[]);
    let serve = env.start(&["serve", "--listen", "127.0.0.1:0", "--interval", "1s"]);
    serve.address().await;
    let root = common::tempdir("backups");
    let pass = root.join("pass");
    std::fs::write(&pass, "the backup passphrase of the ops team\n").unwrap();
    // Taken while the scheduler's runs write: the first as soon as a run has begun.
    serve.wait_line("run ").await;
    let plain = root.join("plain");
    let out = env.ok(&["backup", plain.to_str().unwrap()]);
    assert!(out.contains("NOT included"), "{out}");
    let sealed = root.join("sealed");
    let out = env.ok(&["backup", sealed.to_str().unwrap(), "--key-passphrase-file", pass.to_str().unwrap()]);
    assert!(out.contains("included, encrypted"), "{out}");
    drop(serve);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(sealed.join("manifest.json")).unwrap()).unwrap();
    let key = std::fs::read_to_string(env.dir.join("master.key")).unwrap();
    assert!(!std::fs::read_to_string(sealed.join("master.key.enc")).unwrap().contains(key.trim()), "the key encrypted");
    assert!(!plain.join("master.key.enc").exists() && !plain.join("master.key").exists());
    let (_, again) = env.tenure(&["backup", sealed.to_str().unwrap()]);
    assert!(again.contains("is not empty"), "a backup never overwrites one: {again}");

    // Restored from the key kept apart: the chain up to the manifest's head, record for record.
    let restored = Env { dir: root.join("restored"), database_url: None };
    let (code, out) = restored.tenure(&[
        "restore",
        sealed.to_str().unwrap(),
        "--key-file",
        env.dir.join("master.key").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("scheduled runs wait"), "{out}");
    let head = &manifest["audit_head"];
    let verify = restored.ok(&["audit", "verify"]);
    assert!(verify.contains("chain intact"), "{verify}");
    let ndjson = |e: &Env| -> Vec<Value> {
        let out = e.ok(&["audit", "export", "--format", "ndjson"]);
        out.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let (before, after) = (ndjson(&env), ndjson(&restored));
    let n = head["seq"].as_i64().unwrap() as usize;
    assert_eq!(after.len(), n + 1, "the backup's records, and the restore's own");
    assert_eq!(after[n]["action"], "store_restored");
    assert_eq!(after[n]["detail"]["audit_head"], *head);
    for (a, b) in before.iter().take(n).zip(after.iter().take(n)) {
        assert_eq!(a["seq"], b["seq"]);
        assert_eq!(a["action"], b["action"]);
        assert_eq!(a["detail"], b["detail"]);
    }
    assert_eq!(restored.ok(&["user", "list", "--json"]), env.ok(&["user", "list", "--json"]), "every user");
    let runs = |e: &Env| -> Vec<Value> { serde_json::from_str(&e.ok(&["runs", "--json", "--limit", "1000"])).unwrap() };
    let (runs_then, runs_now) = (runs(&restored), runs(&env));
    assert!(
        !runs_then.is_empty() && runs_then.len() <= runs_now.len(),
        "{} runs, {} now",
        runs_then.len(),
        runs_now.len()
    );
    let out = restored.ok(&["backup", "--check"]);
    assert!(out.contains("chain intact") && out.contains("every one opens"), "{out}");

    // Restored from the backup's own key, with its passphrase; a wrong one leaves nothing.
    let wrong = root.join("wrong-pass");
    std::fs::write(&wrong, "not the passphrase at all, no").unwrap();
    let other = Env { dir: root.join("other"), database_url: None };
    let (code, out) =
        other.tenure(&["restore", sealed.to_str().unwrap(), "--key-passphrase-file", wrong.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("passphrase does not open"), "{out}");
    assert!(!other.dir.join("tenure.db").exists() && !other.dir.join("master.key").exists(), "nothing left behind");
    other.ok(&["restore", sealed.to_str().unwrap(), "--key-passphrase-file", pass.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(other.dir.join("master.key")).unwrap().trim(), key.trim());
    // The plain backup holds no key: the restore asks for one.
    let third = Env { dir: root.join("third"), database_url: None };
    let (code, out) =
        third.tenure(&["restore", plain.to_str().unwrap(), "--key-passphrase-file", pass.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("holds no key"), "{out}");
    // Never over a store.
    let (code, out) =
        env.tenure(&["restore", sealed.to_str().unwrap(), "--key-passphrase-file", pass.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("empty data folder only"), "{out}");

    // The restored store does nothing on its own until a person confirms.
    let serving = restored.start(&["serve", "--listen", "127.0.0.1:0", "--interval", "1s"]);
    serving.wait_line("scheduled runs wait: this store was restored").await;
    assert_eq!(runs(&restored).len(), runs_then.len(), "no run started");
    let st: Value = serde_json::from_str(&restored.ok(&["status", "--json"])).unwrap();
    assert_eq!(st["restored"]["taken_at"], manifest["taken_at"], "{st}");
    // Said to the monitoring too: the wait, the scheduler's heartbeat, the audit head.
    let metrics = reqwest::get(format!("{}/metrics", serving.address().await)).await.unwrap().text().await.unwrap();
    for line in [
        "tenure_store_restored_unconfirmed 1",
        "tenure_scheduler_last_turn_timestamp_seconds ",
        "tenure_audit_behind 0",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    assert!(metrics.contains(&format!("tenure_audit_head_seq {}", head["seq"].as_i64().unwrap() + 1)), "{metrics}");
    assert!(restored.ok(&["status"]).contains("scheduled runs wait for `tenure restore --confirm`"));
    let out = restored.ok(&["restore", "--confirm"]);
    assert!(out.contains("confirmed"), "{out}");
    let st: Value = serde_json::from_str(&restored.ok(&["status", "--json"])).unwrap();
    assert!(st["restored"].is_null(), "{st}");
    let (code, out) = restored.tenure(&["restore", "--confirm"]);
    assert_eq!(code, 1, "once only: {out}");
    let audit = restored.ok(&["audit", "export", "--format", "ndjson"]);
    assert!(audit.contains("store_restored") && audit.contains("store_restore_confirmed"), "{audit}");
    drop(serving);
}

/// Issue 30 point 3: the head is kept apart from the chain (the data folder's audit.head and a
/// row of its own), so a copy of tenure.db alone put back is reported as behind, by `audit
/// verify` and `tenure status`; `--expect-head` proves nothing was cut off since a head kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_the_database_file_alone_is_seen_behind_its_head() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "behind", "");
    env.load("w.csv", &population(12), "2026-06-01T12:00:00Z", &[]);
    env.ok(&["apply", "--yes"]);
    let out = env.ok(&["audit", "verify"]);
    let kept = out.split("--expect-head ").nth(1).unwrap().trim().to_string();
    assert!(env.dir.join("audit.head").exists());
    let (seq, hash) = kept.split_once(':').unwrap();
    assert_eq!(std::fs::read_to_string(env.dir.join("audit.head")).unwrap().trim(), format!("{seq} {hash}"));
    let old = env.dir.join("old.db");
    std::fs::copy(env.dir.join("tenure.db"), &old).unwrap();

    // More happens: the kept head is still in the chain, as it was.
    env.load("w2.csv", &population(15), "2026-06-02T12:00:00Z", &[]);
    env.ok(&["apply", "--yes"]);
    let out = env.ok(&["audit", "verify", "--expect-head", &kept]);
    assert!(out.contains("chain intact"), "{out}");
    let (code, out) = env.tenure(&["audit", "verify", "--expect-head", &format!("{seq}:{}", "0".repeat(64))]);
    assert_eq!(code, 1, "another hash at that record: {out}");
    let (code, out) = env.tenure(&["audit", "verify", "--expect-head", "9999999:abc"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BEHIND"), "{out}");
    let now = env.ok(&["audit", "verify"]);
    assert!(now.contains("chain intact"), "{now}");

    // The copy of the file alone put back: intact as a chain, but behind what was written.
    for side in ["tenure.db-wal", "tenure.db-shm"] {
        let _ = std::fs::remove_file(env.dir.join(side));
    }
    std::fs::copy(&old, env.dir.join("tenure.db")).unwrap();
    let (code, out) = env.tenure(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BEHIND its head") && out.contains("missing at the end"), "{out}");
    let status = env.ok(&["status"]);
    assert!(status.contains("audit: BEHIND its head"), "{status}");
    let v: Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert_eq!(v["audit"]["behind"], true, "{v}");
    assert_eq!(v["audit"]["head"]["seq"].as_i64().unwrap(), seq.parse::<i64>().unwrap());
}

/// Issue 30 point 2: a store restored from before a batch of leavers plans their accounts back;
/// it says it was restored, its scheduled runs wait, and the reactivation guard refuses the
/// run until a person confirms the number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_restored_from_before_leavers_never_brings_them_back_unasked() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "back-in-time", "");
    let now = "2026-06-10T12:00:00Z";
    env.load("w.csv", &population(40), now, &[]);
    let (code, out) = env.tenure(&["apply", "--yes", "--as-of", now]);
    assert_eq!(code, 0, "{out}");
    let root = common::tempdir("back-in-time-backup");
    let backup = root.join("before");
    env.ok(&["backup", backup.to_str().unwrap()]);

    // Ten people leave after the backup: their accounts are deactivated.
    let leavers = population_with_leavers(40, 10);
    env.load("w2.csv", &leavers, now, &[]);
    let (code, out) = env.tenure(&["apply", "--yes", "--as-of", now, "--confirm-deprovision", "10"]);
    assert_eq!(code, 0, "{out}");
    let inactive = |a: &std::collections::HashMap<String, Value>| a.values().filter(|u| u["active"] == false).count();
    assert_eq!(inactive(&accounts(&sb).await), 10);

    // The store goes back to before them.
    let restored = Env { dir: root.join("restored"), database_url: None };
    restored.ok(&["restore", backup.to_str().unwrap(), "--key-file", env.dir.join("master.key").to_str().unwrap()]);
    let (code, out) = restored.tenure(&["plan", "--as-of", now]);
    assert_eq!(code, 3, "the guard would refuse: {out}");
    assert!(out.contains("RESTORED: this store was restored at"), "{out}");
    assert!(out.contains("reactivate (10)"), "{out}");
    let o = restored.command().args(["plan", "--json", "--as-of", now]).output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(plan["restored"]["taken_at"].is_string(), "{plan}");
    assert_eq!(plan["guard"]["guard"], "reactivation", "{plan}");
    assert_eq!(plan["guard"]["confirm_with"], 10, "{plan}");
    let (code, out) = restored.tenure(&["apply", "--yes", "--as-of", now]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("the reactivation guard holds 10 reactivations") && out.contains("--confirm-reactivation 10"),
        "{out}"
    );
    assert_eq!(inactive(&accounts(&sb).await), 10, "nobody was brought back");
    assert!(restored.ok(&["status"]).contains("the reactivation guard holds"));
    // Only the exact number lets it through.
    let (code, _) = restored.tenure(&["apply", "--yes", "--as-of", now, "--confirm-reactivation", "9"]);
    assert_eq!(code, 3);
    let (code, out) = restored.tenure(&["apply", "--yes", "--as-of", now, "--confirm-reactivation", "10"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(inactive(&accounts(&sb).await), 0, "confirmed: they are back");
}
