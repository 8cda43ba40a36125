//! Stop sequences over streamed text.

/// Watches generated text for the request's stop sequences.
///
/// Text that could still be the start of a stop sequence is held back until the next piece
/// decides it, so a stop string never reaches the client, not even in part.
#[derive(Debug)]
pub(crate) struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

/// What one piece of text did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StopStep {
    /// Text that is safe to emit now.
    pub(crate) emit: String,
    /// The stop sequence that matched; generation must end.
    pub(crate) stopped: Option<String>,
}

impl StopMatcher {
    pub(crate) fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    pub(crate) fn push(&mut self, text: &str) -> StopStep {
        self.held.push_str(text);
        if self.stops.is_empty() {
            return StopStep {
                emit: std::mem::take(&mut self.held),
                stopped: None,
            };
        }
        // The earliest complete match wins.
        let first = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()).map(|at| (at, s)))
            .min_by_key(|(at, s)| (*at, std::cmp::Reverse(s.len())));
        if let Some((at, stop)) = first {
            let stop = stop.clone();
            let emit = self.held[..at].to_owned();
            self.held.clear();
            return StopStep {
                emit,
                stopped: Some(stop),
            };
        }
        // Hold back the longest suffix that is a proper prefix of some stop sequence.
        let keep = self.longest_partial_suffix();
        let cut = self.held.len() - keep;
        let emit = self.held[..cut].to_owned();
        self.held.drain(..cut);
        StopStep {
            emit,
            stopped: None,
        }
    }

    fn longest_partial_suffix(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            let max = stop.len().saturating_sub(1).min(self.held.len());
            for len in (best + 1..=max).rev() {
                let start = self.held.len() - len;
                if self.held.is_char_boundary(start) && stop.starts_with(&self.held[start..]) {
                    best = len;
                    break;
                }
            }
        }
        best
    }

    /// The text still held back when generation ends for another reason.
    pub(crate) fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, Option<String>) {
        let stops: Vec<String> = stops.iter().map(|s| (*s).to_owned()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = String::new();
        for p in pieces {
            let step = m.push(p);
            out.push_str(&step.emit);
            if step.stopped.is_some() {
                return (out, step.stopped);
            }
        }
        out.push_str(&m.finish());
        (out, None)
    }

    #[test]
    fn a_stop_split_across_pieces_never_leaks() {
        let (out, stop) = run(&["END"], &["hello E", "N", "D more"]);
        assert_eq!(out, "hello ");
        assert_eq!(stop.as_deref(), Some("END"));
    }

    #[test]
    fn held_text_is_released_when_the_match_fails() {
        let stops = vec!["END".to_owned()];
        let mut m = StopMatcher::new(&stops);
        assert_eq!(m.push("a E").emit, "a ");
        assert_eq!(m.push("N").emit, "");
        assert_eq!(m.push("x").emit, "ENx");
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn the_earliest_of_several_stops_wins() {
        let (out, stop) = run(&["world", "o w"], &["hello world"]);
        assert_eq!(out, "hell");
        assert_eq!(stop.as_deref(), Some("o w"));
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let (out, stop) = run(&["éé"], &["aé", "b", "é", "é"]);
        assert_eq!(out, "aéb");
        assert_eq!(stop.as_deref(), Some("éé"));
        let (out, stop) = run(&["\n\n"], &["x\n", "y"]);
        assert_eq!(out, "x\ny");
        assert_eq!(stop, None);
    }
}
