//! The real catalogue (`mappings/systems`): every file loads and the fleet serves one entry per
//! system, of the kind the file names.

use std::path::PathBuf;

use serde_json::Value;
use tokio::net::TcpListener;
use yimen_mock_systems::{Catalogue, MockConfig, serve};

fn real_mappings() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mappings")
}

/// (id, kind) of every system file, read with a plain TOML parser.
fn files() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for level in std::fs::read_dir(real_mappings().join("systems")).unwrap() {
        for file in std::fs::read_dir(level.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let value: toml::Table =
                    toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                let id = value["system"]["id"].as_str().unwrap().to_owned();
                let kind = value["adapter"]["kind"].as_str().unwrap().to_owned();
                out.push((id, kind));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn the_whole_catalogue_is_served() {
    let expected = files();
    assert!(!expected.is_empty(), "the catalogue has system files");
    let catalogue = Catalogue::load(&real_mappings()).unwrap();
    assert_eq!(catalogue.systems.len(), expected.len());
    let files_dir = tempfile::tempdir().unwrap();
    let config = MockConfig::new(catalogue, files_dir.path().to_owned(), "http://127.0.0.1:9");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(config, listener, async {
        let _ = stopped.await;
    }));
    let stats: Value = reqwest::get(format!("http://{addr}/_admin/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let systems = stats["systems"].as_object().unwrap();
    let served: Vec<(String, String)> = systems
        .iter()
        .map(|(id, entry)| (id.clone(), entry["kind"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(served, expected);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
