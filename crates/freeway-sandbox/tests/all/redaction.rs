//! Secret redaction: every credential shape, configured values, across chunk boundaries and
//! through a real process.

use freeway_sandbox::{ExecRequest, Redactor, Sandbox, SandboxConfig};

use crate::support::config;

fn alnum(n: usize) -> String {
    "aB3dE5gH7jK9mN1pQ2sT4vW6yZ8"
        .chars()
        .cycle()
        .take(n)
        .collect()
}

/// `(kind, secret, text containing it)` for every shape.
fn samples() -> Vec<(&'static str, String)> {
    let pem = format!(
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA{}\n{}\n-----END RSA PRIVATE KEY-----",
        alnum(48),
        alnum(64)
    );
    vec![
        ("openai", format!("sk-proj-{}", alnum(48))),
        ("openai", format!("sk-{}", alnum(48))),
        ("anthropic", format!("sk-ant-api03-{}", alnum(60))),
        ("google", format!("AIza{}", alnum(35))),
        ("aws_access_key", "AKIAIOSFODNN7EXAMPLE".to_string()),
        ("github", format!("ghp_{}", alnum(36))),
        ("github", format!("gho_{}", alnum(36))),
        ("github", format!("ghs_{}", alnum(36))),
        (
            "github",
            format!("github_pat_11{}_{}", alnum(20), alnum(59)),
        ),
        (
            "slack",
            format!("xoxb-123456789012-1234567890123-{}", alnum(24)),
        ),
        ("slack", format!("xoxp-123456789012-{}", alnum(24))),
        ("groq", format!("gsk_{}", alnum(52))),
        ("huggingface", format!("hf_{}", alnum(34))),
        (
            "jwt",
            format!(
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.{}",
                alnum(43)
            ),
        ),
        ("private_key", pem),
    ]
}

#[test]
fn every_credential_shape_is_redacted_with_its_kind() {
    let r = Redactor::new::<&str>(&[]).unwrap();
    for (kind, secret) in samples() {
        let text = format!("token: {secret} (end)");
        let out = r.redact(&text);
        assert_eq!(
            out,
            format!("token: [REDACTED:{kind}] (end)"),
            "shape {kind}"
        );
    }
}

#[test]
fn labeled_aws_secret_keeps_the_label() {
    let r = Redactor::new::<&str>(&[]).unwrap();
    let out = r.redact("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n");
    assert_eq!(out, "aws_secret_access_key = [REDACTED:aws_secret_key]\n");
    // An unlabeled 40-character string is not a secret.
    let plain = "commit 0123456789abcdef0123456789abcdef01234567";
    assert_eq!(r.redact(plain), plain);
}

#[test]
fn configured_secret_values_are_redacted() {
    let r = Redactor::new(&["hunter2-very-secret", "abc"]).unwrap();
    assert_eq!(r.redact("pw=hunter2-very-secret;"), "pw=[REDACTED:secret];");
    // Values shorter than 6 bytes would mangle normal output and are ignored.
    assert_eq!(r.redact("abc"), "abc");
}

#[test]
fn secrets_split_across_chunks_are_redacted() {
    let r = Redactor::new(&["hunter2-very-secret"]).unwrap();
    let mut all = samples();
    all.push(("secret", "hunter2-very-secret".into()));
    for (kind, secret) in all {
        let text = format!("line one\nsecret is {secret} ok\nlast line");
        let expected = r.redact(&text);
        assert!(expected.contains(&format!("[REDACTED:{kind}]")));
        for cut in (1..text.len()).filter(|&i| text.is_char_boundary(i)) {
            let mut s = r.stream();
            let mut out = s.push(&text[..cut]);
            out.push_str(&s.push(&text[cut..]));
            out.push_str(&s.finish());
            assert_eq!(out, expected, "{kind} cut at {cut}");
        }
        // Byte-by-byte too.
        let mut s = r.stream();
        let mut out = String::new();
        for c in text.chars() {
            out.push_str(&s.push(&c.to_string()));
        }
        out.push_str(&s.finish());
        assert_eq!(out, expected, "{kind} char by char");
    }
}

#[test]
fn complete_lines_are_released_without_waiting_for_more() {
    let r = Redactor::new::<&str>(&[]).unwrap();
    let mut s = r.stream();
    assert_eq!(s.push("first line\nsecond "), "first line\n");
    assert_eq!(s.push("half\n"), "second half\n");
}

#[tokio::test]
async fn process_output_is_redacted_even_when_written_in_pieces() {
    let key = format!("sk-ant-api03-{}", alnum(60));
    let (a, b) = key.split_at(20);
    let sb = Sandbox::new(SandboxConfig {
        secrets: vec!["my-db-password-123".into()],
        ..config()
    })
    .unwrap();
    let cmd =
        format!("printf '%s' '{a}'; sleep 0.1; printf '%s\\n' '{b}'; echo my-db-password-123 >&2");
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let r = sb
        .run_streaming(ExecRequest::shell(cmd), Some(tx))
        .await
        .unwrap();
    assert_eq!(r.stdout, "[REDACTED:anthropic]\n");
    assert_eq!(r.stderr, "[REDACTED:secret]\n");
    let mut streamed = String::new();
    while let Ok(c) = rx.try_recv() {
        streamed.push_str(&c.text);
    }
    assert!(!streamed.contains(a) && !streamed.contains(b), "{streamed}");
}
