//! Benchmark of the embedded model, driven by `bench/local.sh`.
//!
//! Usage: `bench <model.gguf> <threads> <runs> <tokens-out.json>`. Prints one JSON object:
//! prompt-processing and decode tokens/s, time to first token and peak RSS, medians over `runs`
//! after one warm-up, and writes the exact prompt token ids to `tokens-out.json` so llama.cpp
//! can be fed the same tokens.

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::time::Instant;

use anyhow::{Context, Result};
use freeway_local::{LocalConfig, LocalProvider};
use freeway_types::{ChatRequest, Message, Provider, StreamEvent};
use futures_util::StreamExt;

/// About 200 prompt tokens after the chat template, the question at the end.
const LONG: &str = "You are reading a short report about a small town. The town sits by a river \
that floods every spring. The people built a wall of stone to keep the water out, but each year \
the wall needs repairs. The mayor asked the engineers for a plan. They proposed a new channel \
that would carry the extra water around the town and into the lake to the east. The plan costs \
a lot of money, and some people think the old wall is enough. Others say the floods are getting \
worse every year and the town must act now. The council will vote next month. Farmers worry \
about their fields near the river, and shop owners worry about the main street. The school was \
closed for a week last spring because of the water. Question: in one sentence, what did the \
engineers propose?";

const STORY: &str = "Write a long story about a dragon who learns to fly.";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn request(system: String, user: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        model: "smollm2".into(),
        messages: vec![Message::system(system), Message::user(user)],
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ..ChatRequest::default()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, threads, runs, tokens_out] = args.as_slice() else {
        anyhow::bail!("usage: bench <model.gguf> <threads> <runs> <tokens-out.json>");
    };
    let runs: usize = runs.parse()?;
    let no_wake = std::env::var_os("BENCH_NO_WAKE").is_some();
    let config = LocalConfig {
        threads: Some(threads.parse()?),
        context_size: 2048,
        flash_attention: std::env::var("BENCH_FLASH_ATTN").ok().map(|v| v == "1"),
        ..LocalConfig::with_model(model)
    };
    let t = Instant::now();
    let p = tokio::task::spawn_blocking(move || LocalProvider::load(config)).await??;
    let load_s = t.elapsed().as_secs_f64();

    // The system message differs per run ("Run 3.") so no run reuses the previous run's KV cache.
    let system = |i: usize| format!("Run {i}. You are a helpful assistant.");
    let prompt_ids = |req: &ChatRequest| -> Result<Vec<i32>> {
        Ok(p.tokenize(&p.render_prompt(req).context("render")?))
    };
    let mut export = serde_json::Map::new();
    let (mut pp, mut ttft, mut tg) = (Vec::new(), Vec::new(), Vec::new());
    let (mut n_prompt, mut n_decode) = (0, 0);
    for i in 0..=runs {
        // Prompt processing and time to first token: the long prompt, one output token.
        let req = request(system(i), LONG, 1);
        let t = Instant::now();
        let mut s = p.stream(&req).await?;
        let mut first = None;
        while let Some(e) = s.next().await {
            if first.is_none() && matches!(e?, StreamEvent::TextDelta { .. }) {
                first = Some(t.elapsed());
            }
        }
        let st = p.stats();
        let first = first.unwrap_or_else(|| t.elapsed());
        if i == 0 {
            export.insert("prompt".into(), serde_json::to_value(prompt_ids(&req)?)?);
        } else {
            pp.push(st.last_prompt_tokens as f64 / st.last_prompt_time.as_secs_f64());
            ttft.push(first.as_secs_f64() * 1000.0);
            n_prompt = st.last_prompt_tokens;
        }

        // Decode: a short chat prompt, up to 128 tokens.
        let req = request(system(i), STORY, 128);
        let mut s = p.stream(&req).await?;
        if no_wake {
            // Diagnostic: drain only after generation ended, so no consumer thread wakes per token.
            let done = p.stats().completed + 1;
            while p.stats().completed < done {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        while let Some(e) = s.next().await {
            e?;
        }
        let st = p.stats();
        if i == 0 {
            export.insert("story".into(), serde_json::to_value(prompt_ids(&req)?)?);
        } else {
            tg.push(st.last_decode_tokens as f64 / st.last_decode_time.as_secs_f64());
            n_decode = st.last_decode_tokens;
        }
    }
    std::fs::write(tokens_out, serde_json::to_string(&export)?)?;
    let out = serde_json::json!({
        "engine": "freeway-local",
        "load_s": load_s,
        "prompt_tokens": n_prompt,
        "prompt_tok_s": median(pp.clone()),
        "prompt_tok_s_runs": pp,
        "ttft_ms": median(ttft.clone()),
        "ttft_ms_runs": ttft,
        "decode_tokens": n_decode,
        "decode_tok_s": median(tg.clone()),
        "decode_tok_s_runs": tg,
        "peak_rss_mb": peak_rss_mb(),
    });
    println!("{out}");
    Ok(())
}
