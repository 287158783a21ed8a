//! `pooltriage tokens create|list|revoke` end to end: the built binary on a fresh data directory,
//! with the database read back by Python's own sqlite3 and hashlib (not our code), so "stored as
//! SHA-256, never in clear" is checked independently.
//!
//! Build the binary first (`cargo build -p pooltriage`); the CI builds the workspace.

#[path = "independent/harness.rs"]
mod harness;

use harness::{pooltriage_bin, python};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn tokens(dir: &Path, args: &[&str]) -> Output {
    Command::new(pooltriage_bin())
        .arg("tokens")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("POOLTRIAGE_DATA_DIR")
        .output()
        .expect("pooltriage runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// `SELECT <cols> FROM tokens ORDER BY created_at, rowid` through Python's sqlite3, one row a line
/// with fields separated by `|`, plus `sha256(argv)` for each extra argument.
fn sql_and_hash(db: &Path, cols: &str, to_hash: &[&str]) -> (Vec<String>, Vec<String>) {
    let script = format!(
        "import sqlite3, hashlib, sys\n\
         c = sqlite3.connect(sys.argv[1])\n\
         for r in c.execute('SELECT {cols} FROM tokens ORDER BY created_at, rowid'): print('|'.join('' if v is None else str(v) for v in r))\n\
         print('--')\n\
         for a in sys.argv[2:]: print(hashlib.sha256(a.encode()).hexdigest())\n"
    );
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(db)
        .args(to_hash)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (rows, hashes) = text.split_once("--\n").unwrap();
    (
        rows.lines().map(str::to_string).collect(),
        hashes.lines().map(str::to_string).collect(),
    )
}

#[test]
fn create_list_revoke_on_a_fresh_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    // A data directory that does not exist yet: created, migrated.
    let dir = tmp.path().join("data");

    let out = tokens(
        &dir,
        &[
            "create",
            "--tenant",
            "acme",
            "--role",
            "customer",
            "--name",
            "ticket bot",
        ],
    );
    let token = ok(&out).trim().to_string();
    assert_eq!(token.len(), 67, "{token}");
    assert!(
        token.starts_with("pt_")
            && token[3..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("shown only now"), "{stderr}");

    let out = tokens(
        &dir,
        &[
            "create", "--tenant", "internal", "--role", "admin", "--json",
        ],
    );
    let admin: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(admin["role"], "admin");
    assert_eq!(admin["tenant"], "internal");
    let admin_token = admin["token"].as_str().unwrap().to_string();
    assert_ne!(admin_token, token);

    // Stored: SHA-256 of the token, never the token.
    let db = dir.join("pooltriage.db");
    let (rows, hashes) = sql_and_hash(
        &db,
        "tenant, role, name, hash, revoked_at",
        &[&token, &admin_token],
    );
    assert_eq!(
        rows,
        vec![
            format!("acme|customer|ticket bot|{}|", hashes[0]),
            format!("internal|admin||{}|", hashes[1]),
        ]
    );
    let raw = std::fs::read(&db).unwrap();
    assert!(
        !raw.windows(token.len()).any(|w| w == token.as_bytes()),
        "the secret is not in the file"
    );

    let list: Value = serde_json::from_str(&ok(&tokens(&dir, &["list", "--json"]))).unwrap();
    let list = list["tokens"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list
        .iter()
        .all(|t| t.get("token").is_none() && t.get("hash").is_none()));
    let id = list.iter().find(|t| t["tenant"] == "acme").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let text = ok(&tokens(&dir, &["list"]));
    assert!(
        text.contains(&id) && text.contains("active") && !text.contains(&token),
        "{text}"
    );

    ok(&tokens(&dir, &["revoke", &id]));
    let again = tokens(&dir, &["revoke", &id]);
    assert_eq!(again.status.code(), Some(2), "revoking twice is bad input");
    let (rows, _) = sql_and_hash(&db, "tenant, revoked_at IS NOT NULL", &[]);
    assert_eq!(rows, vec!["acme|1", "internal|0"]);
    assert!(ok(&tokens(&dir, &["list"])).contains("revoked "));
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["create", "--tenant", "acme", "--role", "root"][..],
        &["create", "--tenant", "a/b", "--role", "customer"][..],
        &["create", "--tenant", "", "--role", "customer"][..],
        &["revoke", "0123456789abcdef"][..],
    ] {
        let out = tokens(tmp.path(), args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = tokens(
        tmp.path(),
        &["create", "--tenant", "a/b", "--role", "customer"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
}
