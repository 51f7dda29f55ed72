//! `tenure connection ...` end to end: the real binary against a real sandbox, and a search
//! of every output, log and file for the token afterwards.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

struct Run {
    ok: bool,
    out: String,
}

fn tenure(dir: &Path, args: &[&str], stdin: Option<&str>, transcript: &mut String) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenure"));
    cmd.arg("--data-dir").arg(dir).args(args);
    cmd.env("TENURE_LOG", "debug").env_remove("TENURE_MASTER_KEY").env_remove("TENURE_DATABASE_URL");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    let o = child.wait_with_output().unwrap();
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    transcript.push_str(&out);
    Run { ok: o.status.success(), out }
}

#[test]
fn add_list_test_rotate_remove_and_the_token_is_nowhere() {
    let first_token = "conn-cli-token-FIRST-7001";
    let second_token = "conn-cli-token-SECOND-7002";
    let dir = common::store_dir("conn");
    let sbdir = tempdir("conn-sb");
    let db = db_in(&sbdir);
    let mut sb = spawn_with(&["--db", &db], Some(first_token));
    let url = sb.base.clone();
    let mut t = String::new();

    let tf = dir.join("token.txt");
    std::fs::write(&tf, format!("{first_token}\n")).unwrap();
    let r = tenure(&dir, &["connection", "add", "--url", &url, "--token-file", tf.to_str().unwrap()], None, &mut t);
    assert!(r.ok, "{}", r.out);
    assert!(r.out.contains("added \"Connection-Bearer Token-1\""), "{}", r.out);
    assert!(r.out.contains("****7001"), "{}", r.out);
    assert!(r.out.contains("connection works"), "{}", r.out);
    assert!(r.out.contains("User: provision, deprovision"), "{}", r.out);
    std::fs::remove_file(&tf).unwrap();

    // The second connection takes the next number; its token comes from stdin.
    let r = tenure(
        &dir,
        &["connection", "add", "--url", &url, "--rate-limit", "5"],
        Some(&format!("{first_token}\n")),
        &mut t,
    );
    assert!(r.ok, "{}", r.out);
    assert!(r.out.contains("Connection-Bearer Token-2"), "{}", r.out);
    assert!(r.out.contains("rate limit: 5 requests per second"), "{}", r.out);

    // A wrong token is refused with what to do, and nothing is saved.
    let r = tenure(&dir, &["connection", "add", "--name", "Bad", "--url", &url], Some("wrong-token\n"), &mut t);
    assert!(!r.ok);
    assert!(r.out.contains("token was rejected"), "{}", r.out);
    assert!(r.out.contains("Admin > Security > SCIM"), "{}", r.out);
    // So is an address inside the network.
    let r = tenure(
        &dir,
        &["connection", "add", "--name", "Meta", "--url", "https://169.254.169.254/scim/v2"],
        Some("x\n"),
        &mut t,
    );
    assert!(!r.ok);
    assert!(r.out.contains("link-local"), "{}", r.out);

    let r = tenure(&dir, &["connection", "list"], None, &mut t);
    assert!(r.ok, "{}", r.out);
    assert_eq!(r.out.lines().filter(|l| l.starts_with("Connection-Bearer Token-")).count(), 2, "{}", r.out);
    assert!(r.out.contains("5 req/s") && r.out.contains("no rate limit"), "{}", r.out);
    assert!(!r.out.contains("Bad") && !r.out.contains("Meta"));

    let r = tenure(&dir, &["connection", "test", "Connection-Bearer Token-1"], None, &mut t);
    assert!(r.ok && r.out.contains("connection works"), "{}", r.out);

    // monday.com regenerates the token: the old one stops working.
    sb.kill();
    let addr = url.trim_start_matches("http://").trim_end_matches("/scim/v2").to_string();
    let _sb = spawn_with(&["--db", &db, "--listen", &addr], Some(second_token));
    let r = tenure(&dir, &["connection", "test", "Connection-Bearer Token-1"], None, &mut t);
    assert!(!r.ok && r.out.contains("token was rejected"), "{}", r.out);
    let r = tenure(&dir, &["connection", "rotate-token", "Connection-Bearer Token-1"], Some("still-wrong\n"), &mut t);
    assert!(!r.ok && r.out.contains("the new token was not saved"), "{}", r.out);
    let r = tenure(
        &dir,
        &["connection", "rotate-token", "Connection-Bearer Token-1"],
        Some(&format!("{second_token}\n")),
        &mut t,
    );
    assert!(r.ok, "{}", r.out);
    assert!(r.out.contains("now ****7002") && r.out.contains("connection works"), "{}", r.out);
    let r = tenure(&dir, &["connection", "test", "Connection-Bearer Token-1"], None, &mut t);
    assert!(r.ok, "{}", r.out);

    // Paused, the connection says so in the list; resumed, it is enabled again.
    let r = tenure(&dir, &["connection", "pause", "Connection-Bearer Token-1"], None, &mut t);
    assert!(r.ok && r.out.contains("scheduled runs pass it by"), "{}", r.out);
    let r = tenure(&dir, &["connection", "list"], None, &mut t);
    assert!(r.out.contains("Connection-Bearer Token-1\tpaused\t"), "{}", r.out);
    let r = tenure(&dir, &["connection", "list", "--json"], None, &mut t);
    assert!(r.out.contains("\"paused\": {"), "{}", r.out);
    let r = tenure(&dir, &["connection", "resume", "Connection-Bearer Token-1"], None, &mut t);
    assert!(r.ok, "{}", r.out);
    let r = tenure(&dir, &["connection", "list"], None, &mut t);
    assert!(r.out.contains("Connection-Bearer Token-1\tenabled\t"), "{}", r.out);
    let r = tenure(&dir, &["connection", "pause", "Nope"], None, &mut t);
    assert!(!r.ok && r.out.contains("no connection named"), "{}", r.out);

    let r = tenure(&dir, &["connection", "remove", "Connection-Bearer Token-2"], None, &mut t);
    assert!(r.ok, "{}", r.out);
    assert!(r.out.contains("left as they are") && r.out.contains("0 link(s)"), "{}", r.out);
    let r = tenure(&dir, &["connection", "remove", "Connection-Bearer Token-2"], None, &mut t);
    assert!(!r.ok);
    let r = tenure(&dir, &["connection", "list"], None, &mut t);
    assert_eq!(r.out.lines().filter(|l| l.starts_with("Connection-Bearer Token-")).count(), 1, "{}", r.out);

    // No token in anything tenure printed (debug logs included) or wrote.
    for token in [first_token, second_token] {
        assert!(!t.contains(token), "token in output:\n{t}");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()), "{token} in {}", path.display());
        }
    }
    assert!(dir.join("master.key").exists() && dir.join("tenure.db").exists());
}
