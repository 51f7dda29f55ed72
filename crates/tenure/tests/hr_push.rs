//! The HR push endpoint with the real binary: HMAC-SHA256 over "<timestamp>.<body>", stale
//! timestamps refused, event ids applied once, batches with quarantined items.

mod common;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const SECRET: &str = "push-secret-for-tests-7f3a9c";

fn tenure(dir: &Path, args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_tenure")).arg("--data-dir").arg(dir).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
    )
}

struct Listener {
    child: Child,
    url: String,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listen(dir: &Path) -> Listener {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(dir)
        .args(["hr", "listen", "--listen", "127.0.0.1:0"])
        .env("TENURE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/hr/v1/push"), "{line}");
    Listener { child, url }
}

fn sign(secret: &str, ts: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn send(http: &reqwest::Client, url: &str, body: &[u8], ts: i64, sig: &str) -> (u16, Value) {
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .header("X-Tenure-Timestamp", ts.to_string())
        .header("X-Tenure-Signature", sig)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn push(http: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let ts = now();
    send(http, url, &bytes, ts, &sign(SECRET, ts, &bytes)).await
}

fn worker(id: &str, email: &str, status: &str) -> Value {
    json!({"employee_id": id, "first_name": "Łucja", "last_name": "Wójcik", "work_email": email,
           "employment_type": "employee", "status": status, "hire_date": "2024-02-01",
           "time_zone": "Europe/Warsaw"})
}

fn events_of(dir: &Path, worker: &str) -> Vec<String> {
    let (code, out) = tenure(dir, &["hr", "events", "--json", "--worker", worker]);
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}:{}", e["kind"].as_str().unwrap(), e["state"].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn pushes_are_signed_fresh_and_applied_once() {
    let dir = common::store_dir("hr-push");
    let (code, out) = tenure(&dir, &["hr", "listen", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 1);
    assert!(out.contains("no push secret yet: create one with `tenure hr push-secret`"), "{out}");
    let secret_file = dir.join("secret.txt");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let (code, out) = tenure(&dir, &["hr", "push-secret", "--secret-file", secret_file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(SECRET), "{out}");
    std::fs::remove_file(&secret_file).unwrap();

    let mut l = listen(&dir);
    let http = reqwest::Client::new();
    let one = json!({"event_id": "evt-1", "worker": worker("W-1", "lucja@acme.example", "active")});
    let body = serde_json::to_vec(&one).unwrap();

    // Unsigned, wrongly signed, signed for another body, stale, from the future.
    let r = http.post(&l.url).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json", "errors are problem documents");
    assert!(r.text().await.unwrap().contains("missing the X-Tenure-Timestamp header"));
    let ts = now();
    let (s, v) = send(&http, &l.url, &body, ts, &sign("another-secret-entirely", ts, &body)).await;
    assert_eq!((s, v["detail"].as_str().unwrap()), (401, "the signature does not match this body and timestamp"));
    let (s, _) = send(&http, &l.url, &body, ts, &sign(SECRET, ts, b"{}")).await;
    assert_eq!(s, 401);
    let (s, _) = send(&http, &l.url, &body, ts, &sign(SECRET, ts + 1, &body)).await;
    assert_eq!(s, 401, "the timestamp is part of what is signed");
    let old = ts - 301;
    let (s, v) = send(&http, &l.url, &body, old, &sign(SECRET, old, &body)).await;
    assert_eq!(s, 401);
    assert!(v["detail"].as_str().unwrap().contains("stale or replayed request is refused"), "{v}");
    let ahead = ts + 400;
    assert_eq!(send(&http, &l.url, &body, ahead, &sign(SECRET, ahead, &body)).await.0, 401);
    let (s, _) = send(&http, &l.url, &body, ts, "sha256=zz").await;
    assert_eq!(s, 401);
    assert!(events_of(&dir, "W-1").is_empty(), "nothing refused was applied");

    // Signed and fresh: a hire. The same request again (a replay inside the window) changes nothing.
    let sig = sign(SECRET, ts, &body);
    let (s, v) = send(&http, &l.url, &body, ts, &sig).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted"], json!(["evt-1"]));
    assert_eq!(v["events"][0]["kind"], "hire");
    let (s, v) = send(&http, &l.url, &body, ts, &sig).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["accepted"].clone(), v["duplicates"].clone()), (json!([]), json!(["evt-1"])));
    assert_eq!(events_of(&dir, "W-1"), vec!["hire:pending"]);

    // A batch: a change of e-mail, an item that fails validation, a new hire; then the
    // fixed item again under its event id is taken (a quarantined item does not use up its id).
    let batch = json!({"events": [
        {"event_id": "evt-2", "worker": worker("W-1", "lucja.wojcik@acme.example", "active")},
        {"event_id": "evt-3", "worker": worker("W-2", "not-an-email", "active")},
        {"event_id": "evt-4", "worker": worker("W-3", "w3@acme.example", "active")},
    ]});
    let (s, v) = push(&http, &l.url, &batch).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted"], json!(["evt-2", "evt-4"]));
    assert_eq!(v["quarantined"][0]["event_id"], "evt-3");
    assert_eq!(v["quarantined"][0]["problems"][0]["column"], "work_email");
    assert_eq!(events_of(&dir, "W-1"), vec!["hire:pending", "change:pending"]);
    assert!(events_of(&dir, "W-2").is_empty());
    let fixed = json!({"event_id": "evt-3", "worker": worker("W-2", "w2@acme.example", "active")});
    let (s, v) = push(&http, &l.url, &fixed).await;
    assert_eq!((s, v["accepted"].clone()), (200, json!(["evt-3"])), "{v}");

    // Two changes to one worker in a batch: the later record wins (here: hired, then gone
    // before anything was made; one net termination of the hire already recorded).
    let batch = json!({"events": [
        {"event_id": "evt-5", "worker": worker("W-3", "w3@acme.example", "leave")},
        {"event_id": "evt-6", "worker": worker("W-3", "w3@acme.example", "terminated")},
    ]});
    let (s, v) = push(&http, &l.url, &batch).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(events_of(&dir, "W-3"), vec!["hire:superseded", "termination:pending"]);

    // Two people under one id (other names and e-mail): neither is taken, each names the other,
    // as the file doors quarantine a repeated id; the rest of the batch goes on.
    let mut other = worker("W-7", "piotr@acme.example", "active");
    other["first_name"] = json!("Piotr");
    let batch = json!({"events": [
        {"event_id": "evt-7a", "worker": worker("W-7", "w7@acme.example", "active")},
        {"event_id": "evt-7c", "worker": worker("W-7", "w7@acme.example", "leave")},
        {"event_id": "evt-7b", "worker": other},
        {"event_id": "evt-8", "worker": worker("W-8", "w8@acme.example", "active")},
    ]});
    let (s, v) = push(&http, &l.url, &batch).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted"], json!(["evt-8"]), "{v}");
    let q = v["quarantined"].to_string();
    assert!(q.contains("evt-7a") && q.contains("evt-7c") && q.contains("evt-7b"), "all three: {v}");
    assert!(q.contains("item 3 has the same employee id") && q.contains("item 1 has the same employee id"), "{v}");
    assert!(events_of(&dir, "W-7").is_empty(), "neither of the two is taken");

    // Every item invalid: 422. Malformed, ids missing or repeated: 400, nothing applied.
    let (s, v) = push(&http, &l.url, &json!({"event_id": "evt-7", "worker": {"employee_id": "W-9"}})).await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = push(&http, &l.url, &json!({"worker": worker("W-9", "w9@acme.example", "active")})).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("item 1: \"event_id\""), "{v}");
    let twice = json!({"events": [{"event_id": "x", "worker": worker("W-9", "a@acme.example", "active")},
                                  {"event_id": "x", "worker": worker("W-9", "a@acme.example", "active")}]});
    let (s, v) = push(&http, &l.url, &twice).await;
    assert_eq!(s, 400);
    assert!(v["detail"].as_str().unwrap().contains("items 1 and 2 have the same event_id"), "{v}");
    let bad = b"{\"event_id\": \"y\",\n \"worker\": {";
    let ts = now();
    let (s, v) = send(&http, &l.url, bad, ts, &sign(SECRET, ts, bad)).await;
    assert_eq!(s, 400);
    assert!(v["detail"].as_str().unwrap().contains("line 2, column"), "{v}");
    assert!(events_of(&dir, "W-9").is_empty());

    // Pushed bodies are archived like files; the secret is in no log and no file.
    let (_, loads) = tenure(&dir, &["hr", "loads"]);
    assert!(loads.contains("push (delta, by hr push secret)"), "who sent it is recorded: {loads}");
    let _ = l.child.kill();
    let mut err = String::new();
    l.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("HR push refused"), "refusals are logged: {err}");
    assert!(!err.contains(SECRET));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "{} holds the secret", p.display());
        }
    }
}

#[test]
fn a_generated_push_secret_is_shown_once() {
    let dir = common::store_dir("hr-push-secret");
    let (code, out) = tenure(&dir, &["hr", "push-secret"]);
    assert_eq!(code, 0, "{out}");
    let secret = out.trim().rsplit(' ').next().unwrap().to_string();
    assert_eq!(secret.len(), 64, "{out}");
    let (code, out) = tenure(&dir, &["hr", "loads"]);
    assert_eq!(code, 0);
    assert!(!out.contains(&secret));
    let short = dir.join("short");
    std::fs::write(&short, "abc").unwrap();
    let (code, out) = tenure(&dir, &["hr", "push-secret", "--secret-file", short.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("a push secret needs at least 16 characters"), "{out}");
}
