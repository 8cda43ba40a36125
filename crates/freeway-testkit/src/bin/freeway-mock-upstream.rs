//! `freeway-mock-upstream`: the behavioral mock of OpenAI, Anthropic and Gemini on one port.

use std::io::Write;

use freeway_testkit::behavior::{self, Keys};

const HELP: &str = "\
freeway-mock-upstream: a deterministic OpenAI + Anthropic + Gemini upstream for tests and benchmarks

USAGE:
    freeway-mock-upstream [--listen ADDR] [--openai-key KEY] [--anthropic-key KEY] [--gemini-key KEY]

OPTIONS:
    --listen ADDR          address to bind [default: 127.0.0.1:0]; prints `listening on <addr>`
    --openai-key KEY       required `Authorization: Bearer` key (unset: any or none)
    --anthropic-key KEY    required `x-api-key` (unset: any key, but one must be sent)
    --gemini-key KEY       required `x-goog-api-key` (unset: any key, but one must be sent)
    -h, --help             this text

PATHS:
    POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models           (OpenAI)
    POST /v1/messages, GET /v1/models with anthropic-version                  (Anthropic)
    POST /v1beta/models/{model}:generateContent | :streamGenerateContent?alt=sse
         | :batchEmbedContents, GET /v1beta/models                            (Gemini)
    GET /_mock/calls: {\"<model>\": <chat requests received>, ...}

MAGIC MODELS:
    error-400 error-400-context error-401 error-403 error-404 error-429 error-500 error-503
    error-529 (or overloaded) slow-<ms> hang-midstream
    coding-agent: plays a coding task (read calc.py and test_calc.py, fix add, run the test)
";

struct Args {
    listen: String,
    keys: Keys,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        listen: "127.0.0.1:0".to_owned(),
        keys: Keys::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (flag.clone(), None),
        };
        if name == "-h" || name == "--help" {
            return Ok(None);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--listen" => args.listen = value()?,
            "--openai-key" => args.keys.openai = Some(value()?),
            "--anthropic-key" => args.keys.anthropic = Some(value()?),
            "--gemini-key" => args.keys.gemini = Some(value()?),
            other => return Err(format!("unknown argument `{other}` (see --help)")),
        }
    }
    Ok(Some(args))
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            let _ = std::io::stdout().write_all(HELP.as_bytes());
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "freeway-mock-upstream: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "freeway-mock-upstream: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result: std::io::Result<()> = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen).await?;
        let addr = listener.local_addr()?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on {addr}")?;
            out.flush()?;
        }
        tokio::select! {
            served = behavior::serve(listener, args.keys) => served,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "freeway-mock-upstream: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
