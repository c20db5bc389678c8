//! The sans-io Azure crate against a real Azurite: every operation the app relies on, including the
//! edge cases (block ids, no overwrite, ETag races, continuation, pop receipts, SAS expiry).

use anyhow::Result;
use chrono::{Duration, Utc};
use dilux_azure::{blob, queue, table, Account, BlobSas, SasPermissions};
use dilux_dumper_host::storage::Storage;
use dilux_e2e::Azurite;

#[tokio::test]
async fn blob_queue_and_table_operations_work_against_azurite() -> Result<()> {
    let az = Azurite::start()?;
    let s = Storage::new(Account::from_connection_string(&az.connection_string)?);
    let a = &s.account;
    let now = Utc::now;

    // Blob: container, blocks, commit without overwrite, read, list, SAS, delete.
    blob::parse_create_container(s.send("c", blob::create_container(a, now(), "backups")).await?)?;
    blob::parse_create_container(s.send("c", blob::create_container(a, now(), "backups")).await?)?; // idempotent
    let name = "postgresql/db 1/20260101_000000.sql.gz";
    let attempt = blob::attempt_prefix();
    let ids: Vec<String> = (0..3).map(|i| blob::block_id(&attempt, i)).collect();
    for (i, id) in ids.iter().enumerate() {
        s.send("b", blob::put_block(a, now(), "backups", name, id, vec![b'a' + i as u8; 1000]))
            .await?
            .check("put block")?;
    }
    let meta = vec![("sha256".to_string(), "abc".to_string())];
    s.send("l", blob::put_block_list(a, now(), "backups", name, &ids, "application/gzip", &meta, false))
        .await?
        .check("commit")?;
    let again = s
        .send("l", blob::put_block_list(a, now(), "backups", name, &ids, "application/gzip", &meta, false))
        .await?
        .check("commit");
    assert!(matches!(again.unwrap_err().status(), Some(409) | Some(412)), "an existing backup is never overwritten");
    let got = s.send("g", blob::get_blob(a, now(), "backups", name)).await?.check("get")?;
    assert_eq!(got.body.len(), 3000);
    assert_eq!(&got.body[..1], b"a");
    assert_eq!(&got.body[2999..], b"c");
    let props = blob::parse_properties(s.send("h", blob::get_properties(a, now(), "backups", name)).await?)?;
    assert_eq!(props.content_length, 3000);
    assert!(props.metadata.contains(&("sha256".into(), "abc".into())));
    let page =
        blob::parse_list_blobs(s.send("ls", blob::list_blobs(a, now(), "backups", "postgresql/", None, None)).await?)?;
    assert_eq!(page.items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), vec![name]);

    let client = reqwest::Client::new();
    let sas = BlobSas::new(a, "backups", name, SasPermissions::Read, Utc::now(), Duration::minutes(5))?;
    assert_eq!(client.get(&sas.url).send().await?.bytes().await?.len(), 3000);
    let put = client.put(&sas.url).header("x-ms-blob-type", "BlockBlob").body("x").send().await?;
    assert_eq!(put.status().as_u16(), 403, "a download link cannot write");
    let expired =
        BlobSas::new(a, "backups", name, SasPermissions::Read, Utc::now() - Duration::hours(2), Duration::minutes(5))?;
    assert_eq!(client.get(&expired.url).send().await?.status().as_u16(), 403, "an expired link is refused");
    blob::parse_delete_blob(s.send("d", blob::delete_blob(a, now(), "backups", name)).await?)?;
    blob::parse_delete_blob(s.send("d", blob::delete_blob(a, now(), "backups", name)).await?)?; // already gone is fine
    assert_eq!(s.send("g", blob::get_blob(a, now(), "backups", name)).await?.status, 404);

    // Queue: put, lease, extend (new receipt), old receipt refused, delete.
    queue::parse_create_queue(s.send("q", queue::create_queue(a, now(), "jobs")).await?)?;
    queue::parse_put_message(s.send("p", queue::put_message(a, now(), "jobs", "{\"job\":\"é\"}")).await?)?;
    let msgs = queue::parse_get_messages(s.send("get", queue::get_messages(a, now(), "jobs", 1, 30)).await?)?;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].text, "{\"job\":\"é\"}");
    assert_eq!(msgs[0].dequeue_count, 1);
    let none = queue::parse_get_messages(s.send("get", queue::get_messages(a, now(), "jobs", 1, 30)).await?)?;
    assert!(none.is_empty(), "a leased message is invisible to other workers");
    let receipt = queue::parse_update_visibility(
        s.send("u", queue::update_visibility(a, now(), "jobs", &msgs[0].id, &msgs[0].pop_receipt, 60)).await?,
    )?;
    let stale = queue::parse_delete_message(
        s.send("d", queue::delete_message(a, now(), "jobs", &msgs[0].id, &msgs[0].pop_receipt)).await?,
    );
    assert!(stale.is_err(), "a stale pop receipt cannot delete");
    queue::parse_delete_message(s.send("d", queue::delete_message(a, now(), "jobs", &msgs[0].id, &receipt)).await?)?;
    assert_eq!(queue::parse_approximate_count(s.send("m", queue::get_metadata(a, now(), "jobs")).await?)?, 0);

    // Table: insert, conflict, get, ETag race, query with continuation, Int64, delete.
    table::parse_create_table(s.send("t", table::create_table(a, now(), "things")).await?)?;
    table::parse_create_table(s.send("t", table::create_table(a, now(), "things")).await?)?;
    for i in 0..5 {
        let mut e = table::Entity::new();
        e.insert("PartitionKey".into(), "p".into());
        e.insert("RowKey".into(), format!("r{i}").into());
        e.insert("name".into(), format!("n'{i} 🦀").into());
        table::set_i64(&mut e, "size_bytes", 5_000_000_000 + i);
        table::parse_write(s.send("i", table::insert_entity(a, now(), "things", &e)).await?, "insert")?;
    }
    let mut dup = table::Entity::new();
    dup.insert("PartitionKey".into(), "p".into());
    dup.insert("RowKey".into(), "r0".into());
    assert!(table::parse_write(s.send("i", table::insert_entity(a, now(), "things", &dup)).await?, "insert")
        .unwrap_err()
        .is_conflict());
    let (e, etag) =
        table::parse_get_entity(s.send("g", table::get_entity(a, now(), "things", "p", "r1")).await?)?.unwrap();
    assert_eq!(e["name"], "n'1 🦀");
    assert_eq!(table::get_i64(&e, "size_bytes"), Some(5_000_000_001));
    let mut changed = e.clone();
    changed.insert("name".into(), "first".into());
    table::parse_write(s.send("m", table::merge_entity(a, now(), "things", &changed, Some(&etag))?).await?, "merge")?;
    changed.insert("name".into(), "second".into());
    let race = table::parse_write(
        s.send("m", table::merge_entity(a, now(), "things", &changed, Some(&etag))?).await?,
        "merge",
    );
    assert!(race.unwrap_err().is_precondition_failed(), "a write based on a stale ETag is refused");
    let mut seen = Vec::new();
    let mut cont = None;
    loop {
        let page = table::parse_query(
            s.send(
                "q",
                table::query(a, now(), "things", Some("PartitionKey eq 'p' and name ne 'zzz'"), Some(2), cont.as_ref()),
            )
            .await?,
        )?;
        assert!(page.entities.len() <= 2);
        seen.extend(page.entities.into_iter().map(|(e, _)| e["RowKey"].as_str().unwrap().to_string()));
        match page.continuation {
            Some(c) => cont = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, vec!["r0", "r1", "r2", "r3", "r4"]);
    // $batch: all or nothing, with the failure read from the inner status of a 202.
    let ent = |rk: &str| {
        let mut e = table::Entity::new();
        e.insert("PartitionKey".into(), "b".into());
        e.insert("RowKey".into(), rk.into());
        e
    };
    let ops: Vec<table::BatchOp> = (0..3).map(|i| table::BatchOp::Insert(ent(&format!("x{i}")))).collect();
    table::parse_batch(s.send("b", table::batch(a, now(), "things", &ops, "one")?).await?)?;
    let mixed = vec![table::BatchOp::Insert(ent("x9")), table::BatchOp::Insert(ent("x1"))];
    let err = table::parse_batch(s.send("b", table::batch(a, now(), "things", &mixed, "two")?).await?).unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(
        table::parse_get_entity(s.send("g", table::get_entity(a, now(), "things", "b", "x9")).await?)?.is_none(),
        "a failed batch applies nothing"
    );
    let stale = vec![table::BatchOp::Update(ent("x0"), Some("W/\"datetime'2000-01-01T00%3A00%3A00Z'\"".into()))];
    assert!(table::parse_batch(s.send("b", table::batch(a, now(), "things", &stale, "three")?).await?)
        .unwrap_err()
        .is_precondition_failed());
    table::parse_delete_entity(s.send("d", table::delete_entity(a, now(), "things", "p", "r0", None)).await?)?;
    assert!(table::parse_get_entity(s.send("g", table::get_entity(a, now(), "things", "p", "r0")).await?)?.is_none());
    Ok(())
}
