//! A tenure data folder (SQLite, or a PostgreSQL schema of its own) connected to a sandbox
//! with the example rules, and helpers to load HR rows, plan and read the sandbox's accounts.
#![allow(dead_code)]

use super::Sandbox;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

pub const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tenure.toml");
pub const HEADER: &str =
    "employee_id,first_name,last_name,work_email,title,department,employment_type,status,leave_type,\
hire_date,termination_date,leave_start,leave_end,time_zone";

pub struct Env {
    pub dir: PathBuf,
    /// PostgreSQL (a schema of its own) instead of the SQLite file in `dir`.
    pub database_url: Option<String>,
}

/// A PostgreSQL schema of one test, dropped when the test ends (passed or not), so runs do
/// not pile schemas up in the shared test database.
pub struct PgSchema {
    pub admin: String,
    pub schema: String,
    /// The URL tenure is given: the test database with this schema first on the search path.
    pub url: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (admin, schema) = (self.admin.clone(), self.schema.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(pool) = sqlx::AnyPool::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&pool).await;
                    pool.close().await;
                }
            })
        })
        .join();
    }
}

/// A fresh PostgreSQL schema for one test, or None (said loudly) when
/// TENURE_TEST_DATABASE_URL is not set.
pub async fn postgres(test: &str) -> Option<PgSchema> {
    let Ok(url) = std::env::var("TENURE_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED: {test}: TENURE_TEST_DATABASE_URL is not set (.ci/run sets it)");
        return None;
    };
    let schema =
        format!("tenure_e2e_{}_{}", test.replace(|c: char| !c.is_ascii_alphanumeric(), "_"), std::process::id());
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&admin).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.unwrap();
    admin.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    let with_schema = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    Some(PgSchema { admin: url, schema, url: with_schema })
}

impl Env {
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tenure"));
        c.arg("--data-dir").arg(&self.dir).env_remove("TENURE_DATABASE_URL").env("TENURE_LOG", "warn");
        if let Some(u) = &self.database_url {
            c.arg("--database-url").arg(u);
        }
        c
    }

    /// The store's URL, for a test that reaches into it.
    pub fn store_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.dir.join("tenure.db").display()))
    }

    pub fn tenure(&self, args: &[&str]) -> (i32, String) {
        let o = self.command().args(args).output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        )
    }

    /// `tenure init`: the store and its master key, as an admin makes them first.
    pub fn init(&self) -> &Env {
        self.ok(&["init"]);
        self
    }

    /// An empty data folder (or schema) with a new store in it.
    pub fn new_store(tag: &str, database_url: Option<String>) -> Env {
        let env = Env { dir: super::tempdir(tag), database_url };
        env.init();
        env
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out) = self.tenure(args);
        assert_eq!(code, 0, "tenure {args:?}:\n{out}");
        out
    }

    /// A connection to the sandbox and the rules (with extra [hr] settings).
    pub fn connect(sb: &Sandbox, tag: &str, hr_settings: &str) -> Env {
        Env::connect_with(sb, tag, hr_settings, "")
    }

    /// As `connect`, with extra settings for the connection.
    pub fn connect_with(sb: &Sandbox, tag: &str, hr_settings: &str, connection_settings: &str) -> Env {
        Env::connect_to(sb, tag, hr_settings, connection_settings, None)
    }

    pub fn connect_to(
        sb: &Sandbox,
        tag: &str,
        hr_settings: &str,
        connection_settings: &str,
        database_url: Option<String>,
    ) -> Env {
        Env::connect_in(sb, super::tempdir(tag), hr_settings, connection_settings, database_url)
    }

    /// As `connect_to`, with the data folder given.
    pub fn connect_in(
        sb: &Sandbox,
        dir: PathBuf,
        hr_settings: &str,
        connection_settings: &str,
        database_url: Option<String>,
    ) -> Env {
        let env = Env { dir, database_url };
        std::fs::create_dir_all(&env.dir).unwrap();
        env.init();
        let token = env.dir.join("token");
        std::fs::write(&token, &sb.token).unwrap();
        env.ok(&[
            "connection",
            "add",
            "--name",
            "Connection-Bearer Token-1",
            "--url",
            &sb.base,
            "--token-file",
            token.to_str().unwrap(),
        ]);
        let rules = std::fs::read_to_string(RULES).unwrap();
        let rules = format!("[hr]\n{hr_settings}\n\n{rules}").replacen(
            "dialect = \"monday\"\n",
            &format!("dialect = \"monday\"\n{connection_settings}\n"),
            1,
        );
        let path = env.dir.join("rules.toml");
        std::fs::write(&path, rules).unwrap();
        env.ok(&["config", "import", path.to_str().unwrap()]);
        env
    }

    pub fn load(&self, name: &str, rows: &[String], as_of: &str, extra: &[&str]) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, format!("{HEADER}\n{}\n", rows.join("\n"))).unwrap();
        let mut args = vec!["hr", "load", p.to_str().unwrap(), "--as-of", as_of];
        args.extend_from_slice(extra);
        let (code, out) = self.tenure(&args);
        assert!(code == 0 || code == 2, "{out}");
        out
    }

    /// The plan's JSON, read from stdout alone: the client's retry warnings (a target that
    /// drops connections) go to stderr.
    pub fn plan(&self, as_of: &str) -> Value {
        let o = self.command().args(["plan", "--json", "--as-of", as_of]).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "tenure plan:\n{out}{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
    }
}

pub fn kinds(plan: &Value) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for a in plan["actions"].as_array().unwrap() {
        m.entry(a["kind"].as_str().unwrap().to_string()).or_default().push(a["worker"].as_str().unwrap().to_string());
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

/// Waits (polling every `step_ms`, at most `tries` times) until the sandbox lists at least
/// `n` users, or the filter's count when `filter` is given; the last count seen.
pub async fn wait_for_users(sb: &Sandbox, filter: Option<&str>, n: u64, step_ms: u64, tries: usize) -> u64 {
    let path = match filter {
        Some(f) => format!("/Users?{}&count=1", super::filter(f)),
        None => "/Users?count=1".to_string(),
    };
    let mut seen = 0;
    for _ in 0..tries {
        tokio::time::sleep(std::time::Duration::from_millis(step_ms)).await;
        seen = sb.get(&path).await.body["totalResults"].as_u64().unwrap_or(0);
        if seen >= n {
            break;
        }
    }
    seen
}

/// A GET answered 200, tried again through the sandbox's own fault knobs (errors, drops).
async fn read(sb: &Sandbox, path: &str) -> Value {
    for _ in 0..50 {
        let r = sb.http.get(format!("{}{path}", sb.base)).bearer_auth(&sb.token).send().await;
        if let Ok(r) = r {
            if r.status().as_u16() == 200 {
                if let Ok(v) = r.json::<Value>().await {
                    return v;
                }
            }
        }
    }
    panic!("GET {path} never answered 200");
}

/// Every account in the sandbox, hand-invited ones included, by userName.
pub async fn accounts(sb: &Sandbox) -> HashMap<String, Value> {
    // Page by page: a page holds at most 1,000.
    let mut users: Vec<Value> = vec![];
    loop {
        let page =
            read(sb, &format!("/Users?scim_provisioned_only=false&count=1000&startIndex={}", users.len() + 1)).await;
        let got = page["Resources"].as_array().cloned().unwrap_or_default();
        let total = page["totalResults"].as_u64().unwrap_or(0) as usize;
        let empty = got.is_empty();
        users.extend(got);
        if empty || users.len() >= total {
            break;
        }
    }
    let groups = read(sb, "/Groups?count=1000").await["Resources"].as_array().cloned().unwrap_or_default();
    users
        .into_iter()
        .map(|mut u| {
            let id = u["id"].as_str().unwrap().to_string();
            let teams: Vec<Value> = groups
                .iter()
                .filter(|g| g["members"].as_array().into_iter().flatten().any(|m| m["value"] == id.as_str()))
                .map(|g| g["displayName"].clone())
                .collect();
            u["teams"] = Value::Array(teams);
            (u["userName"].as_str().unwrap().to_string(), u)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)] // one column each, as in the file
pub fn row(
    id: &str,
    first: &str,
    last: &str,
    title: &str,
    dept: &str,
    typ: &str,
    status: &str,
    hire: &str,
    rest: &str,
) -> String {
    // As an HR system writes work addresses: ASCII, accents dropped.
    let ascii = |s: &str| -> String {
        s.to_lowercase()
            .chars()
            .filter_map(|c| match c {
                'á' | 'à' | 'ä' | 'å' | 'â' => Some('a'),
                'é' | 'è' | 'ë' | 'ê' => Some('e'),
                'í' | 'ï' => Some('i'),
                'ó' | 'ö' | 'ø' | 'ô' => Some('o'),
                'ú' | 'ü' => Some('u'),
                'ñ' => Some('n'),
                'ç' => Some('c'),
                ' ' => Some('-'),
                c if c.is_ascii() => Some(c),
                _ => None,
            })
            .collect()
    };
    let email = format!("{}.{}@acme.example", ascii(first), ascii(last));
    format!("{id},{first},{last},{email},{title},{dept},{typ},{status},{hire},{rest}")
}

/// `population(n)` whose first `left` workers were terminated on 2026-06-01.
pub fn population_with_leavers(n: usize, left: usize) -> Vec<String> {
    population(n)
        .into_iter()
        .enumerate()
        .map(
            |(i, r)| {
                if i < left {
                    r.replace(",active,,2020-01-01,,", ",terminated,,2020-01-01,2026-06-01,")
                } else {
                    r
                }
            },
        )
        .collect()
}

pub fn population(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let dept = ["Engineering", "Sales", "Support"][i % 3];
            row(
                &format!("{}", 10_000 + i),
                "Worker",
                &format!("N{i:04}"),
                "Staff",
                dept,
                "employee",
                "active",
                ",2020-01-01",
                ",,,",
            )
        })
        .collect()
}

pub async fn assert_exactly_once(sb: &Sandbox, n: usize) {
    let acc = accounts(sb).await;
    assert_eq!(acc.len(), n, "one account per worker, no duplicate");
    let mut ext: Vec<&str> = acc.values().map(|u| u["externalId"].as_str().unwrap()).collect();
    ext.sort();
    ext.dedup();
    assert_eq!(ext.len(), n, "no worker has two accounts");
}

/// A long-running tenure process (`serve`, `run`, `hr listen`) and the lines it prints;
/// stopped with SIGTERM when dropped, so a failing test leaves no process behind.
pub struct Running {
    pub child: std::process::Child,
    pub lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// What it logged on standard error (also passed on to the test's own).
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Env {
    /// Starts a long-running command, its standard output collected line by line.
    pub fn start(&self, args: &[&str]) -> Running {
        use std::io::BufRead;
        let mut child = self
            .command()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let err = std::io::BufReader::new(child.stderr.take().unwrap());
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        let sink = logs.clone();
        std::thread::spawn(move || {
            for l in err.lines().map_while(Result::ok) {
                eprintln!("{l}");
                sink.lock().unwrap().push(l);
            }
        });
        Running { child, lines, logs }
    }
}

impl Running {
    /// The first line holding `what`; the deadline only bounds a hang.
    pub async fn wait_line(&self, what: &str) -> String {
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(60) {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| l.contains(what)) {
                return l.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no line with {what:?}: {:?}", self.lines.lock().unwrap());
    }

    /// The address a server printed after "listening on ".
    pub async fn address(&self) -> String {
        let line = self.wait_line("listening on ").await;
        line.split("listening on ").nth(1).unwrap().split_whitespace().next().unwrap().to_string()
    }

    pub fn said(&self, what: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l.contains(what))
    }

    /// Everything it wrote to standard output so far, for a failed assertion to show.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

/// A certificate authority and a server certificate for localhost signed by it, as PEM:
/// (authority, certificate, key).
pub fn test_certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}
