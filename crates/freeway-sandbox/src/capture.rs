//! Turning pipe bytes into capped text: UTF-8 decoding across reads, and a capture buffer that
//! keeps the head and the tail of a flood with a clear marker in between (the tail is where the
//! error usually is).

/// Decodes UTF-8 that may be split across reads; invalid bytes become U+FFFD.
#[derive(Debug, Default)]
pub(crate) struct Utf8Decoder {
    carry: Vec<u8>,
}

impl Utf8Decoder {
    /// Decode `bytes`, keeping an incomplete trailing sequence for the next call.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.carry.extend_from_slice(bytes);
        let keep = incomplete_suffix(&self.carry);
        let split = self.carry.len() - keep;
        let text = String::from_utf8_lossy(&self.carry[..split]).into_owned();
        self.carry.drain(..split);
        text
    }

    /// Whatever is left at end of stream.
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.carry).into_owned();
        self.carry.clear();
        text
    }
}

/// Length of a UTF-8 sequence cut short at the end of `b` (0 when none).
fn incomplete_suffix(b: &[u8]) -> usize {
    for i in 1..=3.min(b.len()) {
        let byte = b[b.len() - i];
        if byte & 0xC0 == 0x80 {
            continue; // continuation byte, look further back
        }
        let need = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return 0,
        };
        return if need > i { i } else { 0 };
    }
    0
}

/// Largest char boundary of `s` not above `i`.
pub(crate) fn floor_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Keeps at most `limit` bytes of a stream: the first half and the last half.
#[derive(Debug)]
pub(crate) struct Capture {
    name: &'static str,
    head_cap: usize,
    tail_cap: usize,
    head: String,
    tail: String,
    dropped: usize,
}

impl Capture {
    pub fn new(name: &'static str, limit: usize) -> Self {
        let head_cap = limit / 2;
        Self {
            name,
            head_cap,
            tail_cap: limit - head_cap,
            head: String::new(),
            tail: String::new(),
            dropped: 0,
        }
    }

    pub fn push(&mut self, mut s: &str) {
        if self.head.len() < self.head_cap && self.tail.is_empty() {
            let room = floor_boundary(s, self.head_cap - self.head.len());
            self.head.push_str(&s[..room]);
            s = &s[room..];
        }
        if s.is_empty() {
            return;
        }
        self.tail.push_str(s);
        if self.tail.len() > 2 * self.tail_cap.max(4096) {
            self.trim_tail();
        }
    }

    fn trim_tail(&mut self) {
        if self.tail.len() > self.tail_cap {
            let cut = self.tail.len() - self.tail_cap;
            let cut = (cut..=self.tail.len())
                .find(|&i| self.tail.is_char_boundary(i))
                .unwrap_or(self.tail.len());
            self.tail.drain(..cut);
            self.dropped += cut;
        }
    }

    /// The kept text and whether anything was cut.
    pub fn finish(mut self) -> (String, bool) {
        self.trim_tail();
        if self.dropped == 0 {
            self.head.push_str(&self.tail);
            return (self.head, false);
        }
        let marker = format!(
            "\n[freeway: {} bytes of {} truncated; output limit is {} bytes]\n",
            self.dropped,
            self.name,
            self.head_cap + self.tail_cap
        );
        let mut out = self.head;
        out.push_str(&marker);
        out.push_str(&self.tail);
        (out, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_joins_split_code_points() {
        let bytes = "héllo €".as_bytes();
        let mut d = Utf8Decoder::default();
        let mut out = String::new();
        for b in bytes {
            out.push_str(&d.push(std::slice::from_ref(b)));
        }
        out.push_str(&d.finish());
        assert_eq!(out, "héllo €");
    }

    #[test]
    fn capture_keeps_head_and_tail_with_marker() {
        let mut c = Capture::new("stdout", 10);
        for _ in 0..1000 {
            c.push("abcdefghij");
        }
        c.push("END");
        let (text, truncated) = c.finish();
        assert!(truncated);
        assert!(text.starts_with("abcde"));
        assert!(text.ends_with("ijEND"), "{text}");
        assert!(text.contains("bytes of stdout truncated"));
    }

    #[test]
    fn capture_under_limit_is_exact() {
        let mut c = Capture::new("stderr", 100);
        c.push("hello ");
        c.push("world");
        assert_eq!(c.finish(), ("hello world".to_string(), false));
    }
}
