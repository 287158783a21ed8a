use super::*;
use crate::db::dumps::{get, insert_or_get, NewDump};
use crate::db::symbol_files::{insert, NewSymbolFile};

const REPORT: &str = r#"{"kind": "analysis", "dump": {"build": 19041}, "bugcheck": {"code": "0x7e"},
  "verdict": {"kind": "not-analyzable", "drivers": []}, "drivers": [],
  "modules": [{"name": "amdppm.sys", "size": 241664, "timestamp": "0xc9c03000", "pdb": null},
              {"name": "other.sys", "size": 4096, "timestamp": "0x1", "pdb":
                 {"name": "other.pdb", "guid": "11111111-2222-3333-4444-555555555555", "age": 1}}]}"#;

async fn done_dump(db: &Db, tenant: &str, sha: &str) -> String {
    let new = NewDump {
        tenant,
        sha256: sha,
        size: 1,
        upload_size: 1,
        compression: "none",
        original_name: Some("t.dmp"),
    };
    let (id, _) = insert_or_get(db, &new, 1).await.unwrap();
    let key: String = sqlx::query_scalar("SELECT analysis FROM dumps WHERE id = $1")
        .bind(&id)
        .fetch_one(db)
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET state = 'done' WHERE sha256 = $1")
        .bind(&key)
        .execute(db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO reports (sha256, json, created_at) VALUES ($1, $2, 1) ON CONFLICT (sha256) DO NOTHING")
        .bind(&key)
        .bind(REPORT)
        .execute(db)
        .await
        .unwrap();
    crate::db::report_index::index(db, &key, REPORT, 1)
        .await
        .unwrap();
    id
}

async fn add_file(db: &Db, tenant: &str, kind: &str, name: &str, key: &str, pdb: Option<&str>) {
    let f = NewSymbolFile {
        tenant,
        kind,
        name,
        key,
        pdb_key: pdb,
        sha256: "00",
        size: 1,
        functions: None,
        line_ranges: None,
        original_name: None,
    };
    insert(db, &f, 5).await.unwrap();
}

async fn files(db: &Db, tenant: &str) -> Vec<SymbolFileRow> {
    crate::db::symbol_files::list(db, Some(tenant), 100, None)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_image_moves_only_its_tenants_dump_to_its_own_analysis() {
    let db = crate::db::open_memory().await;
    let a = done_dump(&db, "acme", "s1").await;
    let b = done_dump(&db, "other", "s1").await;
    add_file(&db, "acme", "pe", "amdppm.sys", "C9C030003b000", None).await;
    let keys = keys_of(&db, "acme", &files(&db, "acme").await)
        .await
        .unwrap();
    assert_eq!(
        keys.iter().collect::<Vec<_>>(),
        ["amdppm.sys/c9c030003b000"]
    );
    let r = requeue_matching(&db, "acme", &keys, None, 9).await.unwrap();
    assert_eq!(r.requeued.len(), 1);
    assert_eq!(r.requeued[0].id, a);
    let da = get(&db, &a, None).await.unwrap().unwrap();
    assert_eq!(
        (da.analysis.as_str(), da.state.as_str()),
        ("s1@acme", "queued")
    );
    // The other tenant keeps the shared analysis, done, with its report.
    let db_b = get(&db, &b, None).await.unwrap().unwrap();
    assert_eq!(
        (db_b.analysis.as_str(), db_b.state.as_str()),
        ("s1", "done")
    );
    assert!(crate::db::dumps::report(&db, "s1").await.unwrap().is_some());
    // A tenant's new uploads now get its own analysis at once.
    let (c, _) = insert_or_get(
        &db,
        &NewDump {
            tenant: "acme",
            sha256: "s2",
            size: 1,
            upload_size: 1,
            compression: "none",
            original_name: None,
        },
        10,
    )
    .await
    .unwrap();
    assert_eq!(
        get(&db, &c, None).await.unwrap().unwrap().analysis,
        "s2@acme"
    );
}

#[tokio::test]
async fn a_pdb_matches_by_its_key_and_through_the_images_naming_it() {
    let db = crate::db::open_memory().await;
    let a = done_dump(&db, "acme", "s1").await;
    // other.sys carries its PDB key in the report.
    add_file(
        &db,
        "acme",
        "pdb",
        "other.pdb",
        "111111112222333344445555555555551",
        Some("other.pdb/111111112222333344445555555555551"),
    )
    .await;
    let keys = keys_of(&db, "acme", &files(&db, "acme").await)
        .await
        .unwrap();
    let r = requeue_matching(&db, "acme", &keys, None, 9).await.unwrap();
    assert_eq!(r.requeued.len(), 1);
    // The shared analysis had no other user: it is gone; the own one is queued.
    assert!(crate::db::dumps::report(&db, "s1").await.unwrap().is_none());
    assert_eq!(get(&db, &a, None).await.unwrap().unwrap().state, "queued");
    // Done again, then amdppm.pdb arrives: known only through the uploaded image naming it.
    sqlx::query("UPDATE jobs SET state = 'done'")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO reports (sha256, json, created_at) VALUES ('s1@acme', $1, 1)")
        .bind(REPORT)
        .execute(&db)
        .await
        .unwrap();
    crate::db::report_index::index(&db, "s1@acme", REPORT, 1)
        .await
        .unwrap();
    let amd_pdb = "amdppm.pdb/1c19fddb27bb3399d9b45973efeafcf31";
    add_file(
        &db,
        "acme",
        "pe",
        "amdppm.sys",
        "C9C030003b000",
        Some(amd_pdb),
    )
    .await;
    let pdb_only = vec![SymbolFileRow {
        kind: "pdb".into(),
        pdb_key: Some(amd_pdb.into()),
        ..files(&db, "acme").await[0].clone()
    }];
    let keys = keys_of(&db, "acme", &pdb_only).await.unwrap();
    assert!(keys.contains("amdppm.sys/c9c030003b000"), "{keys:?}");
    let r = requeue_matching(&db, "acme", &keys, None, 9).await.unwrap();
    assert_eq!(r.requeued.len(), 1);
    // Retention deleted the file: listed, not queued.
    sqlx::query("UPDATE jobs SET state = 'done'")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO dump_files_deleted (sha256, deleted_at, reason) VALUES ('s1', 1, 'x')",
    )
    .execute(&db)
    .await
    .unwrap();
    let r = requeue_matching(&db, "acme", &keys, None, 9).await.unwrap();
    assert!(r.requeued.is_empty());
    assert_eq!(r.not_requeued[0].reason, "dump file deleted by retention");
    // Another tenant's store never matches acme's dumps.
    let r = requeue_matching(&db, "other", &keys, None, 9)
        .await
        .unwrap();
    assert_eq!(r, Requeued::default());
}
