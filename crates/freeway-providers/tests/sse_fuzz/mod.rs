//! `SseParser` under random chunking and random bytes: a seeded loop (no extra dependency), so
//! a failure names the seed that reproduces it.

use freeway_providers::sse::{SseEvent, SseParser};
use freeway_testkit::{Protocol, fixture};

/// xorshift64*: deterministic, good enough to pick split points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn parse(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, freeway_providers::sse::SseError> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    for c in chunks {
        parser.feed(c, &mut out)?;
    }
    parser.finish(&mut out)?;
    Ok(out)
}

fn random_split<'a>(rng: &mut Rng, bytes: &'a [u8]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        // Mostly tiny chunks (splitting `\r\n` and UTF-8 sequences), sometimes big ones.
        let max = if rng.below(4) == 0 { 64 } else { 4 };
        let n = 1 + rng.below(max.min(rest.len()));
        let (head, tail) = rest.split_at(n);
        chunks.push(head);
        rest = tail;
    }
    chunks
}

const FIXTURES: [(Protocol, &str); 7] = [
    (Protocol::OpenAi, "stream_text.sse"),
    (Protocol::OpenAi, "stream_parallel_tool_calls.sse"),
    (Protocol::OpenAi, "stream_error.sse"),
    (Protocol::Anthropic, "stream_text.sse"),
    (Protocol::Anthropic, "stream_tool_use.sse"),
    (Protocol::Gemini, "stream_text.sse"),
    (Protocol::Gemini, "stream_function_call.sse"),
];

#[test]
fn random_chunking_of_recorded_streams_gives_the_same_events() {
    for (protocol, name) in FIXTURES {
        let text = fixture(protocol, name).unwrap();
        let bytes = text.as_bytes();
        let whole = parse(&[bytes]).unwrap();
        assert_eq!(
            whole.len(),
            freeway_testkit::split_frames(&text).len(),
            "{name}: one event per frame"
        );
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let chunks = random_split(&mut rng, bytes);
            assert_eq!(
                parse(&chunks).unwrap(),
                whole,
                "{protocol:?}/{name}, seed {seed}"
            );
        }
    }
}

#[test]
fn every_line_ending_convention_gives_the_same_events() {
    let text = fixture(Protocol::Anthropic, "stream_tool_use.sse").unwrap();
    let expected = parse(&[text.as_bytes()]).unwrap();
    for ending in ["\r\n", "\r"] {
        let converted = text.replace('\n', ending);
        let mut rng = Rng(7);
        let chunks = random_split(&mut rng, converted.as_bytes());
        assert_eq!(parse(&chunks).unwrap(), expected, "{ending:?}");
    }
}

#[test]
fn random_bytes_never_panic() {
    let alphabet: &[u8] = b"data: event:\r\n\n:{}\"\xff\xc3\xa9 x";
    for seed in 1..=2000u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let len = rng.below(512);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(8) == 0 {
                    rng.next() as u8
                } else {
                    alphabet[rng.below(alphabet.len())]
                }
            })
            .collect();
        let chunks = random_split(&mut rng, &bytes);
        // Errors (invalid UTF-8) are fine; panics are not. Valid input parses the same whole.
        if let Ok(events) = parse(&chunks) {
            assert_eq!(parse(&[&bytes]).ok(), Some(events), "seed {seed}");
        }
    }
}
