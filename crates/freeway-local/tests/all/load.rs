use freeway_local::{LocalConfig, LocalError, LocalProvider};

/// A GGUF v3 file with no tensors and the given metadata strings and u32s.
fn gguf(strings: &[(&str, &str)], u32s: &[(&str, u32)]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(((strings.len() + u32s.len()) as u64).to_le_bytes());
    let key = |b: &mut Vec<u8>, k: &str| {
        b.extend((k.len() as u64).to_le_bytes());
        b.extend(k.as_bytes());
    };
    for (k, v) in strings {
        key(&mut b, k);
        b.extend(8u32.to_le_bytes());
        b.extend((v.len() as u64).to_le_bytes());
        b.extend(v.as_bytes());
    }
    for (k, v) in u32s {
        key(&mut b, k);
        b.extend(4u32.to_le_bytes());
        b.extend(v.to_le_bytes());
    }
    b
}

#[test]
fn an_unknown_architecture_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.gguf");
    std::fs::write(
        &path,
        gguf(
            &[("general.architecture", "frobnicator")],
            &[("general.file_type", 3)],
        ),
    )
    .unwrap();
    let err = LocalProvider::load(LocalConfig::with_model(&path)).unwrap_err();
    match &err {
        LocalError::Unsupported {
            architecture,
            file_type,
            ..
        } => {
            assert_eq!(architecture, "frobnicator");
            assert_eq!(file_type, "Q4_1");
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("frobnicator"), "{err}");
}

#[test]
fn missing_and_non_gguf_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        LocalProvider::load(LocalConfig::with_model(dir.path().join("none.gguf"))).unwrap_err();
    assert!(matches!(err, LocalError::ModelMissing { .. }));
    assert!(err.to_string().contains("scripts/fetch-model.sh"), "{err}");
    let text = dir.path().join("text.gguf");
    std::fs::write(&text, "hello world").unwrap();
    let err = LocalProvider::load(LocalConfig::with_model(&text)).unwrap_err();
    assert!(matches!(err, LocalError::NotGguf { .. }), "{err}");
}
