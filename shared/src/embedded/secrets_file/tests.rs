//! The secrets file: reading, atomic and locked writes, permissions.

use super::*;

#[tokio::test]
async fn reads_strings_and_tables_and_writes_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.toml");
    std::fs::write(
        &path,
        "\"router/ingest-key\" = \"k1\"\n[\"cognigy/credentials\"]\nclient_id = \"id\"\nclient_secret = \"s\"\n",
    )
    .unwrap();
    let store = FileSecrets::open(&path).unwrap();
    assert_eq!(store.get("router/ingest-key").await.unwrap().expose(), "k1");
    let creds: serde_json::Value =
        serde_json::from_str(store.get("cognigy/credentials").await.unwrap().expose()).unwrap();
    assert_eq!(creds["client_secret"], "s");
    assert_eq!(
        store.get("nope").await,
        Err(SecretError::NotFound("nope".into()))
    );

    store
        .put(
            "cognigy/token",
            &Secret::new("{\"access_token\":\"t\"}".into()),
        )
        .await
        .unwrap();
    let reopened = FileSecrets::open(&path).unwrap();
    assert_eq!(
        reopened.get("cognigy/token").await.unwrap().expose(),
        "{\"access_token\":\"t\"}"
    );
    assert_eq!(
        reopened.get("router/ingest-key").await.unwrap().expose(),
        "k1"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary file is left behind: {leftovers:?}"
    );
}

#[tokio::test]
async fn json_files_work_too_and_parse_errors_hide_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.json");
    std::fs::write(&path, r#"{"a": "1"}"#).unwrap();
    let store = FileSecrets::open(&path).unwrap();
    store.put("b", &Secret::new("2".into())).await.unwrap();
    assert_eq!(
        FileSecrets::open(&path)
            .unwrap()
            .get("b")
            .await
            .unwrap()
            .expose(),
        "2"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "key = \"supersecret\nbroken").unwrap();
    let err = FileSecrets::open(&bad).unwrap_err().to_string();
    assert!(!err.contains("supersecret"), "{err}");
    assert!(FileSecrets::open(&dir.path().join("missing.toml")).is_err());
}

#[cfg(unix)]
#[tokio::test]
async fn a_write_keeps_the_files_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o600, 0o640] {
        let path = dir.path().join(format!("secrets-{mode:o}.toml"));
        std::fs::write(&path, "a = \"1\"\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let store = FileSecrets::open(&path).unwrap();
        store
            .put("tokens/x", &Secret::new("t".into()))
            .await
            .unwrap();
        let now = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(now, mode, "a {mode:o} file stays {mode:o}");
        assert_eq!(store.get("a").await.unwrap().expose(), "1");
    }
}

#[test]
fn concurrent_writers_never_lose_each_others_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.toml");
    std::fs::write(&path, "\"router/ingest-key\" = \"k\"\n").unwrap();
    // Separate stores (as separate processes have), each writing its own entries.
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let store = FileSecrets::open(&path).unwrap();
                for i in 0..15 {
                    rt.block_on(store.put(&format!("w{w}/e{i}"), &Secret::new(format!("{w}-{i}"))))
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let map = FileSecrets::open(&path).unwrap().read_map().unwrap();
    assert_eq!(map.len(), 1 + 6 * 15, "every entry survived");
}

#[tokio::test]
async fn update_decides_on_the_current_value_under_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.json");
    std::fs::write(&path, r#"{"n": "5"}"#).unwrap();
    let store = FileSecrets::open(&path).unwrap();
    let only_if_larger = |new: u32| {
        move |cur: Option<&Secret>| {
            let cur: u32 = cur.map_or(0, |c| c.expose().parse().unwrap());
            (new > cur).then(|| Secret::new(new.to_string()))
        }
    };
    assert!(!store.update("n", &only_if_larger(3)).await.unwrap());
    assert!(store.update("n", &only_if_larger(7)).await.unwrap());
    assert!(store.update("m", &only_if_larger(1)).await.unwrap());
    assert_eq!(store.get("n").await.unwrap().expose(), "7");
    assert_eq!(store.get("m").await.unwrap().expose(), "1");
}
