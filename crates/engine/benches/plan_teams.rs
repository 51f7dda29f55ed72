//! What teams from HR data cost a plan: 100,000 generated workers planned with the example
//! rules, and with the same rules plus team formulas (a department team among the default
//! teams, an office team in the Engineering role) and three additive team rules, side by side
//! in one run: against an empty target (the initial sync: every create and team join) and
//! against a target in step (the everyday reconcile: nothing to do).
//!
//! cargo bench -p engine --bench plan_teams        (BENCH_ROWS, default 100000)

use engine::plan::{plan, Inputs};
use engine::{Actual, Kind, Plan};
use hr::generate::{generate, to_csv};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

const TEAM_RULES: &str = r#"
[[team_rule]]
name = "Departments"
teams = ["=department"]

[[team_rule]]
name = "Contractors by office"
when = { field = "employment_type", op = "equals", value = "contractor" }
teams = ["=\"Contractors \" & location"]

[[team_rule]]
name = "Managers"
when = { field = "title", op = "contains", value = "Manager" }
teams = ["Managers", "=department & \" managers\""]
"#;

fn rules(text: &str) -> rules::Rules {
    rules::Rules::compile(&rules::Config::from_toml("bench.toml", text).unwrap()).unwrap()
}

/// The target as the plan leaves it: its creates as accounts, its joins as team members.
fn in_step(p: &Plan) -> (Actual, Vec<store::Link>) {
    let mut users = vec![];
    let mut links = vec![];
    let mut id_of: HashMap<&str, String> = HashMap::new();
    for (i, a) in p.actions.iter().enumerate().filter(|(_, a)| a.kind == Kind::Create) {
        let id = format!("u{i}");
        let mut u = a.body.clone().unwrap();
        u["id"] = json!(id);
        users.push(u);
        links.push(store::Link {
            connection: p.connection.clone(),
            worker_id: a.worker.clone(),
            target_id: id.clone(),
            user_name: a.user_name.clone().unwrap_or_default(),
            origin: "created".into(),
            linked_at: String::new(),
        });
        id_of.insert(a.worker.as_str(), id);
    }
    let mut teams: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for a in p.actions.iter().filter(|a| a.kind == Kind::TeamAdd) {
        teams.entry(a.team.as_deref().unwrap()).or_default().push(json!({"value": id_of[a.worker.as_str()]}));
    }
    let groups = teams
        .into_iter()
        .enumerate()
        .map(|(i, (name, members))| json!({"id": format!("g{i}"), "displayName": name, "members": members}))
        .collect();
    (Actual { users, groups }, links)
}

fn main() {
    let n: usize = std::env::var("BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let csv = to_csv(&generate(n, 42));
    let workers = hr::parse_csv("w.csv", &csv, &hr::HeaderDefinition::default()).unwrap().accepted;
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tenure.toml")).unwrap();
    let with_teams = example
        .replace("default_teams = [\"Everyone\"]", "default_teams = [\"Everyone\", \"=department\"]")
        .replace("teams = [\"Engineering\"]", "teams = [\"Engineering\", \"=\\\"Office \\\" & location\"]")
        + TEAM_RULES;
    let sets = [("example rules", rules(&example)), ("+ team formulas and 3 team rules", rules(&with_teams))];
    let now: jiff::Timestamp = "2026-11-29T12:00:00Z".parse().unwrap();
    let none = HashMap::new();
    let run = |r: &rules::Rules, actual: &Actual, links: &[store::Link]| {
        let i = Inputs {
            rules: r,
            connection: 0,
            workers: &workers,
            actual,
            links,
            deactivated: &none,
            tenure_teams: &[],
            now,
        };
        let t = Instant::now();
        let p = plan(&i).unwrap();
        (t.elapsed(), p)
    };
    let empty = Actual::default();
    let targets: Vec<(Actual, Vec<store::Link>)> = sets.iter().map(|(_, r)| in_step(&run(r, &empty, &[]).1)).collect();
    // Alternating, five rounds: both sets see the same machine.
    let mut times: Vec<[Vec<Duration>; 2]> = vec![[vec![], vec![]], [vec![], vec![]]];
    let mut shape = vec![String::new(); 2];
    for _ in 0..5 {
        for (s, (_, r)) in sets.iter().enumerate() {
            let (t, p) = run(r, &empty, &[]);
            times[s][0].push(t);
            shape[s] = format!(
                "{} creates, {} team joins, {} teams made",
                p.count(Kind::Create),
                p.count(Kind::TeamAdd),
                p.missing_teams.len()
            );
            let (t, p) = run(r, &targets[s].0, &targets[s].1);
            assert_eq!(p.count(Kind::NoChange), p.actions.len() - p.count(Kind::Skip), "in step: nothing to do");
            times[s][1].push(t);
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1000.0
    };
    let mut m = [[0.0; 2]; 2];
    for s in 0..2 {
        for k in 0..2 {
            m[s][k] = median(&mut times[s][k]);
        }
        println!("{}: {}", sets[s].0, shape[s]);
    }
    for (k, what) in
        ["against an empty target (initial sync)", "against a target in step (reconcile)"].iter().enumerate()
    {
        println!(
            "plan of {n} {what}: example rules {:.0} ms, with team formulas and rules {:.0} ms (median of 5): {:+.1}% [bar: at most +20%]",
            m[0][k],
            m[1][k],
            (m[1][k] / m[0][k] - 1.0) * 100.0
        );
    }
}
