//! The `waymark` command line: `journeys validate`, `journeys apply`, `import contacts` and the
//! help of each command, run as a real process (against a real server where one is needed).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// What a finished `waymark ...` run printed and how it exited.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
    /// Lines of stdout that list one problem (`  - ...`).
    fn items(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with("  - "))
            .collect()
    }
}

/// Runs the binary with these arguments and a clean `WAYMARK_*` environment plus `env`.
fn waymark(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("WAYMARK_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("cannot run waymark");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn admin_env() -> [(&'static str, &'static str); 1] {
    [("WAYMARK_ADMIN_TOKEN", ADMIN_TOKEN)]
}

const EXAMPLES: [&str; 3] = [
    "abandoned-cart",
    "first-purchase-feedback",
    "welcome-series",
];

fn example_path(name: &str) -> PathBuf {
    repo_root().join(format!("examples/journeys/{name}.yaml"))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path.to_str().expect("UTF-8 path").to_string()
}

/// A journey with one error of each kind the brief names, each on a known node.
const BROKEN: &str = r#"
id: broken-journey
name: Broken journey
entry:
  reentry: once
nodes:
  - id: start
    type: trigger
    event: Signed Up
  - id: pause
    type: delay
    duration: 3x
  - id: mail
    type: send_email
    template: no-such-template
  - id: check-a
    type: branch
    condition:
      traits:
        vip: true
  - id: check-b
    type: branch
    condition:
      traits:
        vip: true
  - id: orphan
    type: exit
edges:
  - { from: start, to: pause }
  - { from: pause, to: mail }
  - { from: mail, to: check-a }
  - { from: check-a, to: check-b, output: "yes" }
  - { from: check-b, to: check-a, output: "yes" }
  - { from: check-a, to: ghost, output: "no" }
"#;

/// (node, code, a piece of the message) of every error in `BROKEN`.
const BROKEN_ERRORS: [(&str, &str, &str); 5] = [
    ("pause", "invalid_duration", "`3x`"),
    ("mail", "unknown_template", "no-such-template"),
    ("check-a", "unknown_node", "ghost"),
    ("orphan", "unreachable_node", "no trigger leads"),
    (
        "check-a",
        "cycle_without_wait",
        "check-a → check-b → check-a",
    ),
];

#[track_caller]
fn assert_lists_broken_errors(run: &Run) {
    let items = run.items();
    for (node, code, text) in BROKEN_ERRORS {
        assert!(
            items.iter().any(|l| l.contains(&format!("node `{node}`"))
                && l.contains(&format!("[{code}]"))
                && l.contains(text)),
            "no `{code}` error on node `{node}` mentioning {text}:\n{}",
            run.describe()
        );
    }
    assert_eq!(
        items.len(),
        BROKEN_ERRORS.len(),
        "exactly the known errors:\n{}",
        run.describe()
    );
}

// ---- journeys validate ----

#[test]
fn validate_accepts_the_three_examples() {
    let paths: Vec<PathBuf> = EXAMPLES.iter().map(|n| example_path(n)).collect();
    let args: Vec<&str> = ["journeys", "validate"]
        .into_iter()
        .chain(paths.iter().map(|p| p.to_str().unwrap()))
        .collect();
    let run = waymark(&args, &[]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    for (name, path) in EXAMPLES.iter().zip(&paths) {
        let nodes = example_json(name)["nodes"].as_array().unwrap().len();
        let line = format!("{}: ok (journey `{name}`, {nodes} nodes)", path.display());
        assert!(
            run.stdout.lines().any(|l| l == line),
            "missing `{line}`:\n{}",
            run.describe()
        );
    }
    assert!(run.items().is_empty(), "{}", run.describe());
}

#[test]
fn validate_lists_every_error_of_a_broken_journey_with_its_node() {
    let dir = tempfile::tempdir().unwrap();
    let broken = write(dir.path(), "broken.yaml", BROKEN);
    let run = waymark(&["journeys", "validate", &broken], &[]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stdout
            .lines()
            .any(|l| l == format!("{broken}: 5 error(s)")),
        "{}",
        run.describe()
    );
    assert_lists_broken_errors(&run);
    assert!(
        run.stdout.contains("edges[5].to"),
        "the unknown node's edge is named: {}",
        run.describe()
    );

    // With a valid file alongside: both are reported, the exit code still says "invalid".
    let good = example_path("welcome-series");
    let run = waymark(
        &["journeys", "validate", good.to_str().unwrap(), &broken],
        &[],
    );
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stdout
            .contains("welcome-series.yaml: ok (journey `welcome-series`, 6 nodes)"),
        "{}",
        run.describe()
    );
    assert_lists_broken_errors(&run);
}

#[test]
fn validate_reports_invalid_yaml_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = write(
        dir.path(),
        "bad.yaml",
        "id: bad\nnodes:\n  - id: a\n    type: [trigger\n",
    );
    let run = waymark(&["journeys", "validate", &yaml], &[]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.lines()
            .any(|l| l.starts_with(&format!("{yaml}: invalid YAML"))),
        "{}",
        run.describe()
    );
    assert!(!all.contains("panicked"), "{}", run.describe());

    let json = write(dir.path(), "bad.json", "{ \"id\": \"bad\", \"nodes\": [ }");
    let run = waymark(&["journeys", "validate", &json], &[]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.lines()
            .any(|l| l.starts_with(&format!("{json}: invalid JSON"))),
        "{}",
        run.describe()
    );

    let missing = dir.path().join("missing.yaml");
    let run = waymark(&["journeys", "validate", missing.to_str().unwrap()], &[]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        format!("{}{}", run.stdout, run.stderr).contains("cannot read"),
        "{}",
        run.describe()
    );
}

#[test]
fn validate_with_server_accepts_templates_that_exist_there() {
    let s = Server::simulated();
    let dir = tempfile::tempdir().unwrap();
    let doc = r#"
id: uses-remote
name: Uses a server template
nodes:
  - { id: start, type: trigger, event: Signed Up }
  - { id: hello, type: send_email, template: remote-hello }
edges:
  - { from: start, to: hello }
"#;
    let path = write(dir.path(), "remote.yaml", doc);
    let run = waymark(&["journeys", "validate", &path], &[]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.items()
            .iter()
            .any(|l| l.contains("node `hello`") && l.contains("[unknown_template]")),
        "{}",
        run.describe()
    );

    s.admin_post(
        "/v1/templates",
        json!({ "id": "remote-hello", "channel": "email", "subject": "Hi", "html": "<p>Hi</p>" }),
    )
    .expect(201);
    let run = waymark(
        &["journeys", "validate", &path, "--server", &s.base],
        &admin_env(),
    );
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert!(
        run.stdout
            .lines()
            .any(|l| l == format!("{path}: ok (journey `uses-remote`, 2 nodes)")),
        "{}",
        run.describe()
    );
}

#[test]
fn validate_suggests_what_was_meant() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "typos.yaml",
        r#"
id: typos
name: Typos
nodes:
  - { id: start, type: trigger, event: Signed Up, filtr: { plan: pro } }
  - { id: wait, type: delay, duration: 1d }
  - { id: welcome, type: send_mail, template: hello }
  - { id: again, type: jump, to: welcom }
edges:
  - { from: start, to: wait }
  - { from: wait, to: welcome }
  - { from: welcome, to: again }
"#,
    );
    let run = waymark(&["journeys", "validate", &path], &[]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    let items = run.items();
    for expected in [
        "unknown field `filtr`; did you mean `filter`? [invalid_node]",
        "unknown node type `send_mail`; did you mean `send_email`? [invalid_node]",
        "there is no node `welcom`; did you mean `welcome`? [unknown_node]",
    ] {
        assert!(
            items.iter().any(|l| l.ends_with(expected)),
            "missing `{expected}`:\n{}",
            run.describe()
        );
    }
    // The nodes with a typo are known by their ids: the edges from and to them and the node
    // after them report nothing more.
    assert_eq!(items.len(), 3, "{}", run.describe());
}

// ---- journeys apply ----

#[test]
fn apply_publishes_versions_and_saves_drafts() {
    let s = Server::simulated();
    let paths: Vec<String> = EXAMPLES
        .iter()
        .map(|n| example_path(n).to_str().unwrap().to_string())
        .collect();
    let apply = |extra: &[&str]| {
        let mut args = vec!["journeys", "apply"];
        args.extend(paths.iter().map(String::as_str));
        args.extend(["--server", s.base.as_str()]);
        args.extend(extra);
        waymark(&args, &admin_env())
    };

    let run = apply(&["--publish"]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    for id in EXAMPLES {
        let line = format!("{id}\tversion 1\tlive");
        assert!(
            run.stdout.lines().any(|l| l == line),
            "missing `{line}`:\n{}",
            run.describe()
        );
        let j = s.admin_get(&format!("/v1/journeys/{id}")).ok();
        assert_eq!(
            (j["status"].clone(), j["live_version"].clone()),
            (json!("live"), json!(1)),
            "{j}"
        );
    }
    // The templates the files ship are on the server.
    for t in [
        "welcome-confirmation",
        "cart-reminder-email",
        "cart-reminder-sms",
        "feedback-request",
    ] {
        s.admin_get(&format!("/v1/templates/{t}")).ok();
    }
    // And the journeys run: a sign-up gets its confirmation.
    s.identify("cli-u1", json!({ "email": "cli-u1@example.com" }))
        .ok();
    s.track("cli-u1", "Signed Up", json!({})).ok();
    s.settle();
    assert_eq!(
        templates_of(&s.messages("cli-u1")),
        ["welcome-confirmation"]
    );

    // The same files again (the next CI deploy): no new version.
    let run = apply(&["--publish"]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    for id in EXAMPLES {
        let line = format!("{id}\tversion 1\tunchanged");
        assert!(
            run.stdout.lines().any(|l| l == line),
            "missing `{line}`:\n{}",
            run.describe()
        );
        let versions = s.admin_get(&format!("/v1/journeys/{id}/versions")).ok();
        assert_eq!(
            versions["versions"].as_array().unwrap().len(),
            1,
            "{versions}"
        );
    }

    // Without --publish: the draft is saved, the live version stays 1.
    let run = apply(&[]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    for id in EXAMPLES {
        let line = format!("{id}\tversion 1\tdraft saved");
        assert!(
            run.stdout.lines().any(|l| l == line),
            "missing `{line}`:\n{}",
            run.describe()
        );
        let j = s.admin_get(&format!("/v1/journeys/{id}")).ok();
        assert_eq!(j["live_version"], 1, "{j}");
        assert_eq!(j["valid"], true, "{j}");
    }
    assert_eq!(run.stdout.lines().count(), 3, "{}", run.describe());
}

/// A journey file with the template it ships; `subject` is the template's subject and
/// `duration` the delay before the send.
fn shipped_journey(subject: &str, duration: &str) -> String {
    format!(
        r#"
# Deployed from git on every push.
id: deployed
name: Deployed from git
nodes:
  - {{ id: start, type: trigger, event: Signed Up }}
  - {{ id: pause, type: delay, duration: {duration} }}
  - {{ id: hello, type: send_email, template: deployed-hello }}
edges:
  - {{ from: start, to: pause }}
  - {{ from: pause, to: hello }}
templates:
  - id: deployed-hello
    channel: email
    subject: "{subject}"
    html: "<p>Hello {{{{ contact.first_name }}}}</p>"
"#
    )
}

#[test]
fn apply_of_an_unchanged_file_makes_no_new_version() {
    let s = Server::simulated();
    let dir = tempfile::tempdir().unwrap();
    let publish = |text: &str, name: &str| {
        let path = write(dir.path(), name, text);
        waymark(
            &["journeys", "apply", &path, "--server", &s.base, "--publish"],
            &admin_env(),
        )
    };
    let versions = || {
        s.admin_get("/v1/journeys/deployed/versions").ok()["versions"]
            .as_array()
            .unwrap()
            .len()
    };
    let run = publish(&shipped_journey("Hi", "1d"), "deployed.yaml");
    assert_eq!(
        run.stdout,
        "deployed\tversion 1\tlive\n",
        "{}",
        run.describe()
    );
    let journey = s.admin_get("/v1/journeys/deployed").ok();
    let template = s.admin_get("/v1/templates/deployed-hello").ok();

    // Later, the same file (written differently: JSON, keys in another order) is a no-op.
    s.advance(3600);
    let run = publish(&shipped_journey("Hi", "1d"), "deployed.yaml");
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert_eq!(
        run.stdout,
        "deployed\tversion 1\tunchanged\n",
        "{}",
        run.describe()
    );
    let as_json: Value = serde_yaml_ng::from_str(&shipped_journey("Hi", "1d")).unwrap();
    let mut reordered = serde_json::Map::new();
    for key in ["templates", "edges", "nodes", "name", "id"] {
        reordered.insert(key.into(), as_json[key].clone());
    }
    let run = publish(&Value::Object(reordered).to_string(), "deployed.json");
    assert_eq!(
        run.stdout,
        "deployed\tversion 1\tunchanged\n",
        "{}",
        run.describe()
    );
    assert_eq!(versions(), 1);
    // Neither the journey nor the template it ships was written again.
    assert_eq!(s.admin_get("/v1/journeys/deployed").ok(), journey);
    assert_eq!(s.admin_get("/v1/templates/deployed-hello").ok(), template);

    // A changed node is a new version.
    s.advance(3600);
    let run = publish(&shipped_journey("Hi", "2d"), "deployed.yaml");
    assert_eq!(
        run.stdout,
        "deployed\tversion 2\tlive\n",
        "{}",
        run.describe()
    );
    // A changed template alone is one too (the version is what will pin its copy).
    s.advance(3600);
    let run = publish(&shipped_journey("Hello there", "2d"), "deployed.yaml");
    assert_eq!(
        run.stdout,
        "deployed\tversion 3\tlive\n",
        "{}",
        run.describe()
    );
    assert_eq!(
        s.admin_get("/v1/templates/deployed-hello").ok()["subject"],
        "Hello there"
    );
    s.advance(3600);
    let run = publish(&shipped_journey("Hello there", "2d"), "deployed.yaml");
    assert_eq!(
        run.stdout,
        "deployed\tversion 3\tunchanged\n",
        "{}",
        run.describe()
    );
    assert_eq!(versions(), 3);
}

#[test]
fn apply_a_broken_journey() {
    let s = Server::simulated();
    let dir = tempfile::tempdir().unwrap();
    let broken = write(dir.path(), "broken.yaml", BROKEN);

    // As a draft: saved, with every error listed.
    let run = waymark(
        &["journeys", "apply", &broken, "--server", &s.base],
        &admin_env(),
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l == "broken-journey\tversion -\tdraft saved with errors"),
        "{}",
        run.describe()
    );
    assert_lists_broken_errors(&run);
    let j = s.admin_get("/v1/journeys/broken-journey").ok();
    assert_eq!(
        (j["status"].clone(), j["valid"].clone()),
        (json!("draft"), json!(false)),
        "{j}"
    );

    // Publishing it fails: exit 1, every error listed, nothing goes live.
    let run = waymark(
        &[
            "journeys",
            "apply",
            &broken,
            "--server",
            &s.base,
            "--publish",
        ],
        &admin_env(),
    );
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stdout
            .contains("journey `broken-journey` not published"),
        "{}",
        run.describe()
    );
    assert_lists_broken_errors(&run);
    let j = s.admin_get("/v1/journeys/broken-journey").ok();
    assert_eq!(j["live_version"], Value::Null, "{j}");

    // A wrong token or no server: exit 1 with a message, no panic.
    let run = waymark(
        &["journeys", "apply", &broken, "--server", &s.base],
        &[("WAYMARK_ADMIN_TOKEN", "wrong")],
    );
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stdout.contains("the admin token is not valid"),
        "{}",
        run.describe()
    );
    let run = waymark(
        &[
            "journeys",
            "apply",
            &broken,
            "--server",
            "http://127.0.0.1:9",
        ],
        &admin_env(),
    );
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains("cannot reach the server"),
        "{}",
        run.describe()
    );
}

// ---- import contacts ----

#[test]
fn import_contacts_reports_every_rejected_row_and_imports_the_good_ones() {
    let s = Server::simulated();
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "contacts.csv",
        "user_id,email,phone,timezone,first_name,plan\n\
         imp-1,Ann@Example.COM,+33 6 12 34 56 78,Europe/Paris,Ann,pro\n\
         imp-2,not-an-email,,,Bob,free\n\
         imp-3,carol@example.com,12345,,Carol,free\n\
         imp-4,dan@example.com,,Mars/Olympus,Dan,free\n\
         ,,,,Eve,free\n\
         ,frank@example.com,+14155550100,America/New_York,\"Frank, Jr.\",team\n\
         imp-8,henry@example.com,,,Henry,free,surplus\n\
         imp-7,,,,Gina,\n",
    );
    let run = waymark(
        &["import", "contacts", &csv, "--server", &s.base],
        &admin_env(),
    );
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stdout
            .lines()
            .any(|l| l == "imported 3 contacts from 3 rows, rejected 5 rows"),
        "{}",
        run.describe()
    );
    let expected = [
        ("line 3: email:", "not-an-email"),
        ("line 4: phone:", "12345"),
        ("line 5: timezone:", "Mars/Olympus"),
        ("line 6: user_id:", "needs a user_id or an email"),
        ("line 8:", "found record with 7 fields"),
    ];
    let items = run.items();
    for (prefix, detail) in expected {
        assert!(
            items
                .iter()
                .any(|l| l.starts_with(&format!("  - {prefix}")) && l.contains(detail)),
            "no rejected row `{prefix} ...{detail}...`:\n{}",
            run.describe()
        );
    }
    assert_eq!(items.len(), 5, "{}", run.describe());

    s.settle();
    let ann = s.contact_by_user("imp-1");
    assert_eq!(ann["email"], "ann@example.com", "{ann}");
    assert_eq!(ann["phone"], "+33612345678", "{ann}");
    assert_eq!(ann["timezone"], "Europe/Paris", "{ann}");
    assert_eq!(ann["traits"]["first_name"], "Ann", "{ann}");
    assert_eq!(ann["traits"]["plan"], "pro", "{ann}");
    // A row with an email but no user_id is keyed by its email.
    let frank = s.contact_by_user("frank@example.com");
    assert_eq!(frank["email"], "frank@example.com", "{frank}");
    assert_eq!(frank["phone"], "+14155550100", "{frank}");
    assert_eq!(frank["timezone"], "America/New_York", "{frank}");
    assert_eq!(frank["traits"]["first_name"], "Frank, Jr.", "{frank}");
    assert_eq!(frank["traits"]["plan"], "team", "{frank}");
    let gina = s.contact_by_user("imp-7");
    assert_eq!(gina["email"], Value::Null, "{gina}");
    assert_eq!(gina["traits"]["first_name"], "Gina", "{gina}");
    assert!(
        gina["traits"].get("plan").is_none(),
        "an empty cell is no trait: {gina}"
    );
    // Nothing of a rejected row was stored.
    for u in ["imp-2", "imp-3", "imp-4", "imp-8"] {
        assert!(s.find_contact_by_user(u).is_none(), "{u} was imported");
    }
    let all = s.admin_get("/v1/contacts?limit=1000").ok();
    assert_eq!(all["contacts"].as_array().unwrap().len(), 3, "{all}");
}

#[test]
fn import_contacts_all_good_exits_zero() {
    let s = Server::simulated();
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "good.csv",
        "email,first_name\nzoe@example.com,Zoé\nyan@example.com,Yan\n",
    );
    let run = waymark(
        &[
            "import",
            "contacts",
            &csv,
            "--list",
            "newsletter",
            "--server",
            &s.base,
        ],
        &admin_env(),
    );
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert!(
        run.stdout
            .lines()
            .any(|l| l == "imported 2 contacts from 2 rows, rejected 0 rows"),
        "{}",
        run.describe()
    );
    s.settle();
    assert_eq!(
        s.contact_by_user("zoe@example.com")["traits"]["first_name"],
        "Zoé"
    );
    assert_eq!(
        s.contact_by_user("yan@example.com")["traits"]["first_name"],
        "Yan"
    );
    // Both are in the list `--list` named.
    let members = s.admin_get("/v1/lists/newsletter/members").ok();
    assert_eq!(
        members["contacts"].as_array().map(Vec::len),
        Some(2),
        "{members}"
    );
}

#[test]
fn import_contacts_reports_a_repeated_contact_by_line_and_merges_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "repeats.csv",
        "user_id,email,first_name\n\
         dup-1,first@example.com,First\n\
         dup-2,second@example.com,Second\n\
         dup-1,other@example.com,Other\n\
         dup-3,SECOND@example.com,Third\n\
         ,solo@example.com,Solo\n\
         ,solo@example.com,Solo again\n",
    );
    let s = Server::simulated();
    let run = waymark(
        &["import", "contacts", &csv, "--server", &s.base],
        &admin_env(),
    );
    assert_eq!(run.code, Some(1), "{}", run.describe());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "imported 3 contacts from 3 rows, rejected 3 rows",
            "  - line 4: user_id: user_id `dup-1` is also on line 2",
            "  - line 5: email: email `second@example.com` is also on line 3, for another contact (to import both, merge duplicates)",
            "  - line 7: email: email `solo@example.com` (the contact's id, as it has no user_id) is also on line 6",
        ],
        "{}",
        run.describe()
    );
    s.settle();
    let first = s.contact_by_user("dup-1");
    assert_eq!(
        first["email"], "first@example.com",
        "the first person's email was replaced"
    );
    assert_eq!(first["traits"]["first_name"], "First");
    assert!(s.find_contact_by_user("dup-3").is_none());

    let s = Server::simulated();
    let run = waymark(
        &[
            "import",
            "contacts",
            &csv,
            "--on-duplicate",
            "merge",
            "--server",
            &s.base,
        ],
        &admin_env(),
    );
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert_eq!(
        run.stdout.lines().next(),
        Some("imported 4 contacts from 6 rows, rejected 0 rows"),
        "{}",
        run.describe()
    );
    s.settle();
    let merged = s.contact_by_user("dup-1");
    assert_eq!(merged["email"], "other@example.com", "{merged}");
    assert_eq!(merged["traits"]["first_name"], "Other", "{merged}");
    assert_eq!(s.contact_by_user("dup-3")["email"], "second@example.com");
    assert_eq!(
        s.contact_by_user("solo@example.com")["traits"]["first_name"],
        "Solo again"
    );
}

/// A file from a pipe cannot be read twice: its repeats are found as it is read, the same.
#[test]
fn import_contacts_from_a_pipe_reports_a_repeated_contact_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("rows.csv");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            std::fs::write(
                fifo,
                "user_id,email\n\
                 p-1,one@example.com\n\
                 p-2,two@example.com\n\
                 p-1,three@example.com\n\
                 p-3,TWO@example.com\n",
            )
            .unwrap()
        })
    };
    let s = Server::simulated();
    let run = waymark(
        &[
            "import",
            "contacts",
            fifo.to_str().unwrap(),
            "--delimiter",
            ",",
            "--server",
            &s.base,
        ],
        &admin_env(),
    );
    writer.join().unwrap();
    assert_eq!(run.code, Some(1), "{}", run.describe());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "imported 2 contacts from 2 rows, rejected 2 rows",
            "  - line 4: user_id: user_id `p-1` is also on line 2",
            "  - line 5: email: email `two@example.com` is also on line 3, for another contact (to import both, merge duplicates)",
        ],
        "{}",
        run.describe()
    );
}

#[test]
fn import_contacts_reads_semicolons_tabs_a_byte_order_mark_and_latin1() {
    let s = Server::simulated();
    let dir = tempfile::tempdir().unwrap();
    let import = |args: &[&str]| {
        let mut all = vec!["import", "contacts"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--server", &s.base]);
        waymark(&all, &admin_env())
    };
    // What Excel writes in much of Europe: `;`, and a byte order mark before the header.
    let semicolons = write(
        dir.path(),
        "excel.csv",
        "\u{feff}user_id;email;first_name\nsemi-1;s1@example.com;Zoé\n",
    );
    let run = import(&[&semicolons]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let tabs = write(
        dir.path(),
        "tabs.tsv",
        "user_id\tcity\ntab-1\tLyon, France\n",
    );
    let run = import(&[&tabs, "--delimiter", "tab"]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    // Latin-1 bytes: refused by line as UTF-8, read when the encoding is given.
    let latin1 = dir.path().join("latin1.csv");
    std::fs::write(&latin1, b"user_id,first_name\nlat-1,Jos\xe9\n").unwrap();
    let latin1 = latin1.to_str().unwrap();
    let run = import(&[latin1]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.items()
            .iter()
            .any(|l| l.starts_with("  - line 2:") && l.contains("UTF-8")),
        "{}",
        run.describe()
    );
    let run = import(&[latin1, "--encoding", "latin1"]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    // A delimiter that is not the file's: the header row says so.
    let run = import(&[&semicolons, "--delimiter", ","]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains("say another with --delimiter"),
        "{}",
        run.describe()
    );
    let run = import(&[&semicolons, "--delimiter", ";;"]);
    assert_eq!(run.code, Some(2), "{}", run.describe());
    s.settle();
    let semi = s.contact_by_user("semi-1");
    assert_eq!(semi["email"], "s1@example.com", "{semi}");
    assert_eq!(semi["traits"]["first_name"], "Zoé", "{semi}");
    assert_eq!(s.contact_by_user("tab-1")["traits"]["city"], "Lyon, France");
    assert_eq!(s.contact_by_user("lat-1")["traits"]["first_name"], "José");
}

#[test]
fn import_contacts_needs_a_user_id_or_email_column() {
    let s = Server::simulated();
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "no-ids.csv", "name,phone\nAnn,+33612345678\n");
    let run = waymark(
        &["import", "contacts", &csv, "--server", &s.base],
        &admin_env(),
    );
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stderr
            .contains("the header row needs a `user_id` or an `email` column (found: name, phone; columns are separated by `,`"),
        "{}",
        run.describe()
    );
    s.settle();
    let all = s.admin_get("/v1/contacts").ok();
    assert_eq!(all["contacts"], json!([]), "{all}");

    // A file that does not exist.
    let missing = dir.path().join("missing.csv");
    let run = waymark(
        &[
            "import",
            "contacts",
            missing.to_str().unwrap(),
            "--server",
            &s.base,
        ],
        &admin_env(),
    );
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(run.stderr.contains("cannot open"), "{}", run.describe());
}

// ---- help ----

#[test]
fn help_of_every_command() {
    let cases: [(&[&str], &[&str]); 7] = [
        (
            &["--help"],
            &["serve", "journeys", "import", "Usage: waymark"],
        ),
        (
            &["serve", "--help"],
            &["--data", "--listen", "--clock", "simulated", "--smtp-url"],
        ),
        (&["journeys", "--help"], &["validate", "apply"]),
        (
            &["journeys", "apply", "--help"],
            &["--publish", "--server", "--admin-token"],
        ),
        (
            &["import", "contacts", "--help"],
            &["user_id", "email", "--server", "--admin-token"],
        ),
        (&["bench", "--help"], &["--quick", "--only", "--database"]),
        (
            &["broadcasts", "--help"],
            &["save", "send", "pause", "resume", "cancel", "show", "list"],
        ),
    ];
    for (args, wanted) in cases {
        let run = waymark(args, &[]);
        assert_eq!(run.code, Some(0), "waymark {args:?}: {}", run.describe());
        for w in wanted {
            assert!(
                run.stdout.contains(w),
                "`waymark {}` does not mention `{w}`:\n{}",
                args.join(" "),
                run.describe()
            );
        }
    }
    let run = waymark(&["--version"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert!(run.stdout.starts_with("waymark "), "{}", run.describe());
    // A mistake on the command line is an error, not a help page with exit 0.
    let run = waymark(&["journeys", "frobnicate"], &[]);
    assert_eq!(run.code, Some(2), "{}", run.describe());
}

#[test]
fn contacts_export_and_erase_talk_to_the_server_and_a_reimported_erased_address_is_suppressed() {
    let s = Server::simulated();
    s.apply_journey(json!({
        "id": "cli-dp", "name": "CLI data protection",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "hello", "type": "send_email", "template": "cli-dp-hello"}
        ],
        "edges": [{"from": "start", "to": "hello"}],
        "templates": [{"id": "cli-dp-hello", "channel": "email", "subject": "Hi {{ contact.first_name }}", "text": "Hi"}]
    }));
    s.identify(
        "zoe",
        json!({"email": "zoe@example.com", "first_name": "Zoé"}),
    )
    .ok();
    s.track("zoe", "Signed Up", json!({})).ok();
    s.settle();
    let id = s.contact_by_user("zoe")["id"].as_i64().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("zoe.json");
    let out_arg = out.to_str().unwrap();

    // Export to a file, then to standard output.
    let run = waymark(
        &[
            "contacts", "export", &id, "--output", out_arg, "--server", &s.base,
        ],
        &admin_env(),
    );
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(file["contact"]["email"], "zoe@example.com");
    assert_eq!(file["contact"]["traits"]["first_name"], "Zoé");
    assert_eq!(file["messages"][0]["subject"], "Hi Zoé");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no partial file left"
    );
    let run = waymark(
        &["contacts", "export", &id, "--server", &s.base],
        &admin_env(),
    );
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let printed: Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    assert_eq!(printed["contact"]["user_id"], "zoe");
    let run = waymark(
        &["contacts", "export", "999999", "--server", &s.base],
        &admin_env(),
    );
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(run.stderr.contains("does not exist"), "{}", run.describe());

    // Erasure needs --yes.
    let run = waymark(
        &["contacts", "erase", &id, "--server", &s.base],
        &admin_env(),
    );
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(run.stderr.contains("--yes"), "{}", run.describe());
    s.admin_get(&format!("/v1/contacts/{id}")).ok();
    let run = waymark(
        &["contacts", "erase", &id, "--yes", "--server", &s.base],
        &admin_env(),
    );
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert!(
        run.stdout.starts_with(&format!("erased contact {id}: ")),
        "{}",
        run.describe()
    );
    assert!(run.stdout.contains("messages\t1"), "{}", run.describe());
    s.admin_get(&format!("/v1/contacts/{id}"))
        .expect_error(404, "not_found");
    let audit = s.admin_get("/v1/audit").ok();
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["contact.export", "contact.export", "contact.erase"]
    );

    // Imported again (as a CSV), the address is a new contact that is not mailed.
    let csv = write(
        dir.path(),
        "again.csv",
        "email,first_name\nZoe@Example.com,Zoé\n",
    );
    let run = waymark(
        &["import", "contacts", &csv, "--server", &s.base],
        &admin_env(),
    );
    assert_eq!(run.code, Some(0), "{}", run.describe());
    s.settle();
    s.track("zoe@example.com", "Signed Up", json!({})).ok();
    s.settle();
    let messages = s.messages("zoe@example.com");
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["status"], "suppressed", "{messages:?}");
    assert_eq!(messages[0]["error"], "address suppressed: erased");
}

// ---- bench ----

/// The benchmark on PostgreSQL (the SQLite run is `scripts/test`'s smoke run): every figure
/// runs on a schema of its own and passes its checks, prints the same figures as on SQLite,
/// and leaves no schema behind.
#[test]
fn bench_quick_runs_every_figure_on_postgresql_and_drops_its_schemas() {
    let Some(url) = test_database_url() else {
        return;
    };
    let run = waymark(
        &[
            "bench",
            "--quick",
            "--send-seconds",
            "1",
            "--cart-seconds",
            "1",
            "--enrollments",
            "500",
            "--process-carts",
            "20",
            "--database",
            &url,
        ],
        &[],
    );
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let figures: Vec<&str> = lines.iter().filter_map(|l| l["bench"].as_str()).collect();
    assert_eq!(
        figures,
        [
            "ingest_events_per_second",
            "journey_steps_per_second",
            "trigger_to_send_latency_p50_ms",
            "trigger_to_send_latency_p99_ms",
            "immediate_send_latency_p50_ms",
            "immediate_send_latency_p99_ms",
            "cart_reminder_lateness_p50_ms",
            "cart_reminder_lateness_p99_ms",
            "import_rows_per_second",
            "broadcast_messages_per_second",
            "broadcast_report_p99_ms",
            "smtp_sink_messages_per_second",
            "broadcast_smtp_messages_per_second",
            "broadcast_first_message_ms",
            "journey_report_p99_ms",
            "replay_seconds",
            "waiting_enrollments_bytes_per_enrollment",
            "fire_all_due_seconds",
            "cart_journeys_per_second_1_process",
            "cart_journeys_per_second_2_processes",
            "cart_journeys_per_second_3_processes",
            "cart_journeys_ratio_3_to_1_processes",
        ],
        "{}",
        run.describe()
    );
    for line in &lines {
        assert_eq!(line["database"], "postgresql", "{line}");
        assert!(line["value"].as_f64().is_some_and(|v| v > 0.0), "{line}");
    }
    // One schema per figure, and one per process count in the processes figure.
    assert_eq!(
        no_schema_left(&url, &run.stderr),
        10 + 3,
        "{}",
        run.describe()
    );
}

/// The schemas the bench says it ran on (in its progress on stderr), after checking that none
/// is left in the database.
fn no_schema_left(url: &str, stderr: &str) -> usize {
    let schemas: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.split("on a fresh schema ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    for schema in &schemas {
        let left: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[schema],
            )
            .expect("query")
            .get(0);
        assert!(!left, "the bench left the schema {schema} behind");
    }
    schemas.len()
}

/// The processes figure: 1, 2 and 3 `waymark serve` child processes on one database, each
/// count on a schema of its own, every cart's journey checked; a line per count and the
/// ratio, and nothing left behind (schemas, processes).
#[test]
fn bench_processes_runs_one_two_and_three_serve_processes_on_one_database() {
    let Some(url) = test_database_url() else {
        return;
    };
    let run = waymark(
        &[
            "bench",
            "--quick",
            "--only",
            "processes",
            "--database",
            &url,
        ],
        &[],
    );
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let figures: Vec<&str> = lines.iter().filter_map(|l| l["bench"].as_str()).collect();
    assert_eq!(
        figures,
        [
            "cart_journeys_per_second_1_process",
            "cart_journeys_per_second_2_processes",
            "cart_journeys_per_second_3_processes",
            "cart_journeys_ratio_3_to_1_processes",
        ],
        "{}",
        run.describe()
    );
    for (line, processes) in lines.iter().zip(1..=3) {
        assert_eq!(line["processes"], processes, "{line}");
        assert_eq!(line["carts"], 300, "{line}");
        assert_eq!(line["completed"], 300, "{line}");
        assert_eq!(line["unit"], "journeys/s", "{line}");
        let held = line["partitions_held"].as_array().expect("partitions_held");
        assert_eq!(held.len(), processes, "{line}");
        assert_eq!(
            held.iter().filter_map(Value::as_u64).sum::<u64>(),
            32,
            "{line}"
        );
    }
    for line in &lines {
        assert_eq!(line["database"], "postgresql", "{line}");
        assert!(line["value"].as_f64().is_some_and(|v| v > 0.0), "{line}");
    }
    assert_eq!(lines[3]["target"], 0.7, "{}", lines[3]);
    assert_eq!(no_schema_left(&url, &run.stderr), 3, "{}", run.describe());
}

/// Without a database the processes figure is refused when asked for by name (and skipped,
/// with a note, in a run of every figure).
#[test]
fn bench_processes_needs_a_database() {
    let run = waymark(&["bench", "--quick", "--only", "processes"], &[]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stderr
            .contains("the processes figure needs --database URL"),
        "{}",
        run.describe()
    );
}

/// The simulate figure runs `waymark simulate` on its own private SQLite store: asked for by
/// name with a database, it is refused, not quietly run on SQLite under a PostgreSQL label.
#[test]
fn bench_simulate_refuses_a_database() {
    let run = waymark(
        &[
            "bench",
            "--quick",
            "--only",
            "simulate",
            "--database",
            "postgres://nobody@127.0.0.1:9/none",
        ],
        &[],
    );
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains(
            "the simulate figure runs `waymark simulate`, which keeps its own private SQLite store"
        ),
        "{}",
        run.describe()
    );
}

/// Two `serve` on one data directory would both run the engine (on SQLite, on one file): the
/// second is refused, and says why.
#[test]
fn a_second_serve_on_the_same_data_directory_is_refused() {
    let first = Server::start(ServerOptions::default());
    let data = first.data_dir().display().to_string();
    let second = waymark(
        &["serve", "--data", &data, "--listen", "127.0.0.1:0"],
        &[
            ("WAYMARK_ADMIN_TOKEN", ADMIN_TOKEN),
            ("WAYMARK_WRITE_KEY", WRITE_KEY),
        ],
    );
    assert_eq!(second.code, Some(1), "{}", second.describe());
    assert!(
        second
            .stderr
            .contains("another `waymark serve` is running on the data directory"),
        "{}",
        second.describe()
    );
    // The first goes on.
    assert_eq!(first.get("/healthz").ok()["status"], "ok");
}

/// A lease time outside 1 s to 10 min is refused before anything starts.
#[test]
fn a_lease_time_out_of_range_is_refused() {
    for bad in ["0s", "500ms", "11m", "soon"] {
        let run = waymark(&["serve", "--lease-time", bad], &[]);
        assert_eq!(run.code, Some(2), "{bad}: {}", run.describe());
        assert!(
            run.stderr.contains("--lease-time"),
            "{bad}: {}",
            run.describe()
        );
    }
}

#[test]
fn broadcasts_are_saved_from_a_file_sent_followed_and_cancelled_from_the_command_line() {
    // The engine runs a broadcast without anyone advancing the (simulated) clock.
    let s = Server::simulated();
    s.admin_put(
        "/v1/templates/cli-news",
        json!({"channel": "email", "subject": "News for {{ contact.first_name }}", "text": "Hi"}),
    )
    .ok();
    for user in ["amy", "ben", "cal"] {
        s.identify(
            user,
            json!({"email": format!("{user}@example.com"), "first_name": user}),
        )
        .ok();
    }
    s.settle();
    let ids: Vec<i64> = ["amy", "ben", "cal"]
        .iter()
        .map(|u| s.contact_by_user(u)["id"].as_i64().unwrap())
        .collect();
    s.admin_post("/v1/lists", json!({"name": "cli-readers"}))
        .expect(201);
    s.admin_post("/v1/lists/cli-readers/members", json!({"contact_ids": ids}))
        .ok();
    let dir = tempfile::tempdir().unwrap();
    let server = ["--server", s.base.as_str()];
    let bc = |args: &[&str]| {
        let mut all = vec!["broadcasts"];
        all.extend_from_slice(args);
        all.extend_from_slice(&server);
        waymark(&all, &admin_env())
    };

    let broken = write(
        dir.path(),
        "broken.yaml",
        "name: Spring\nchannel: email\ntemplate: cli-news\naudience: {list: no-such-list}\n",
    );
    let run = bc(&["save", &broken, "--id", "spring"]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains("`audience`") && run.stderr.contains("no-such-list"),
        "{}",
        run.describe()
    );
    let good = write(
        dir.path(),
        "spring.yaml",
        "name: Spring\nchannel: email\ntemplate: cli-news\naudience: {list: cli-readers}\n",
    );
    let run = bc(&["save", &good, "--id", "spring"]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert_eq!(run.stdout.trim(), "spring");
    let run = bc(&["send", "spring", "--wait"]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let last = run.stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("spring\tsent\t3/3 reached") && last.contains("sent 3"),
        "{}",
        run.describe()
    );
    for user in ["amy", "ben", "cal"] {
        assert_eq!(s.messages(user).len(), 1, "{user}");
    }
    let run = bc(&["list"]);
    assert!(run.stdout.contains("spring\tsent"), "{}", run.describe());
    // Its report: the totals for a person, the series as CSV.
    let run = bc(&["report", "spring"]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert!(
        run.stdout
            .contains("recipients 3  sent 3  delivered 3 (100.0%)"),
        "{}",
        run.describe()
    );
    let run = bc(&["report", "spring", "--csv", "--bucket", "day"]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("bucket_start,entered,sent,"),
        "{}",
        run.describe()
    );
    assert_eq!(lines.len(), 2, "one day: {}", run.describe());
    assert!(lines[1].contains(",3,3,3,"), "{}", run.describe());
    let run = bc(&["report", "no-such-broadcast"]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    // A sent broadcast cannot be cancelled: the command says why and fails.
    let run = bc(&["cancel", "spring"]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(run.stderr.contains("is sent"), "{}", run.describe());
    // A draft can.
    let run = bc(&["save", &good]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let id = run.stdout.trim().to_string();
    assert!(id.starts_with("spring-"), "{id}");
    let run = bc(&["cancel", &id]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert!(run.stdout.contains("\tcancelled\t"), "{}", run.describe());
}
