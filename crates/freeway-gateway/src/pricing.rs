//! What a request cost: the built-in price table (`data/prices.toml`), user overrides, and
//! money as whole nano-dollars.
//!
//! The table knows list prices only; whether a provider is local (and so free) is the caller's
//! business. A model found nowhere is unpriced (`None`), never guessed.

use std::collections::HashMap;
use std::iter::Sum;
use std::ops::{Add, AddAssign};

use freeway_types::Usage;
use serde::Deserialize;

const BUILTIN: &str = include_str!("../data/prices.toml");

/// What one model costs, in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Prompt tokens neither read from nor written to a cache.
    pub input: f64,
    /// Completion tokens, reasoning and thinking tokens included.
    pub output: f64,
    /// Prompt tokens read from the prompt cache; `input` when absent.
    pub cached_input: Option<f64>,
    /// Prompt tokens written to the prompt cache (Anthropic); `input` when absent.
    pub cache_write: Option<f64>,
}

impl Price {
    /// What `usage` costs at this price, rounded to the nearest nano-dollar.
    ///
    /// freeway normalizes usage so that `input_tokens` counts every prompt token, cached or
    /// not, for every protocol: OpenAI's `prompt_tokens` and Gemini's `promptTokenCount` already
    /// include their cached tokens, and the Anthropic module adds `cache_read_input_tokens` and
    /// `cache_creation_input_tokens` to Anthropic's `input_tokens`, which counts neither. So:
    ///
    /// ```text
    /// fresh = input_tokens - cache_read_tokens - cache_write_tokens   (at least 0)
    /// cost  = fresh * input + cache_read_tokens * cached_input + cache_write_tokens * cache_write
    ///       + output_tokens * output
    /// ```
    ///
    /// A price that is negative or not finite counts as zero (the table rejects such prices).
    pub fn cost(&self, usage: &Usage) -> Cost {
        let read = usage.cache_read_tokens;
        let write = usage.cache_write_tokens;
        let fresh = usage
            .input_tokens
            .saturating_sub(read.saturating_add(write));
        let terms = [
            (fresh, self.input),
            (read, self.cached_input.unwrap_or(self.input)),
            (write, self.cache_write.unwrap_or(self.input)),
            (usage.output_tokens, self.output),
        ];
        // Σ tokens × nano-USD per million tokens, in integers: exact, and rounded once.
        let scaled = terms.iter().fold(0i128, |sum, &(tokens, price)| {
            sum.saturating_add(i128::from(tokens).saturating_mul(nanos_per_million(price)))
        });
        let nanos = scaled.saturating_add(500_000) / 1_000_000;
        Cost {
            nanos: i64::try_from(nanos).unwrap_or(i64::MAX),
        }
    }

    /// Checks that every figure is a finite amount of at least zero.
    pub fn validate(&self, model: &str) -> Result<(), PricingError> {
        let fields = [
            ("input", Some(self.input)),
            ("output", Some(self.output)),
            ("cached_input", self.cached_input),
            ("cache_write", self.cache_write),
        ];
        for (field, value) in fields {
            if let Some(value) = value
                && !(value.is_finite() && value >= 0.0)
            {
                return Err(PricingError::InvalidPrice {
                    model: model.to_owned(),
                    field,
                    value,
                });
            }
        }
        Ok(())
    }
}

/// USD per million tokens as whole nano-USD per million tokens (exact to nine decimals).
fn nanos_per_million(usd: f64) -> i128 {
    if usd.is_finite() && usd > 0.0 {
        // `as` saturates; the table's prices are far from the limit.
        (usd * 1e9).round() as i128
    } else {
        0
    }
}

/// An amount of money in billionths of a US dollar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cost {
    pub nanos: i64,
}

impl Cost {
    pub const ZERO: Cost = Cost { nanos: 0 };

    pub fn usd(&self) -> f64 {
        self.nanos as f64 / 1e9
    }
}

impl Add for Cost {
    type Output = Cost;

    fn add(self, other: Cost) -> Cost {
        Cost {
            nanos: self.nanos.saturating_add(other.nanos),
        }
    }
}

impl AddAssign for Cost {
    fn add_assign(&mut self, other: Cost) {
        *self = *self + other;
    }
}

impl Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(iter: I) -> Cost {
        iter.fold(Cost::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Cost> for Cost {
    fn sum<I: Iterator<Item = &'a Cost>>(iter: I) -> Cost {
        iter.copied().sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("the price table does not parse: {0}")]
    Parse(toml::de::Error),
    #[error("the price of `{model}` has {field} = {value}; prices are finite and at least 0")]
    InvalidPrice {
        model: String,
        field: &'static str,
        value: f64,
    },
    #[error("`{model}` is priced twice")]
    Duplicate { model: String },
    #[error("a price table entry has an empty `match`")]
    EmptyMatch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    model: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    #[serde(rename = "match")]
    name: String,
    #[serde(default)]
    provider: Option<String>,
    input: f64,
    output: f64,
    #[serde(default)]
    cached_input: Option<f64>,
    #[serde(default)]
    cache_write: Option<f64>,
}

/// Prices by model, looked up by freeway's `provider/model` target ids.
///
/// Keys are stored lowercased; a lookup lowercases the target (on the stack) and does a few
/// hash probes, so it costs well under a microsecond and allocates nothing for targets up to
/// 256 bytes.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    /// `provider/model` overrides: the target spelled out; beats entries of the same model name.
    targets: HashMap<Box<str>, Price>,
    /// Built-in entries scoped to one provider, keyed `provider/model`.
    scoped: HashMap<Box<str>, Price>,
    /// Built-in entries and bare-name overrides, keyed by model name.
    models: HashMap<Box<str>, Price>,
}

/// Longest target lowercased on the stack; longer ones are lowercased on the heap.
const STACK_TARGET: usize = 256;

impl PriceTable {
    /// The table shipped in `data/prices.toml`.
    pub fn builtin() -> Result<Self, PricingError> {
        Self::parse(BUILTIN)
    }

    fn parse(text: &str) -> Result<Self, PricingError> {
        let raw: RawTable = toml::from_str(text).map_err(PricingError::Parse)?;
        let mut table = PriceTable::default();
        for entry in raw.model {
            let name = entry.name.trim().to_ascii_lowercase();
            if name.is_empty() {
                return Err(PricingError::EmptyMatch);
            }
            let price = Price {
                input: entry.input,
                output: entry.output,
                cached_input: entry.cached_input,
                cache_write: entry.cache_write,
            };
            let (map, key) = match entry.provider {
                Some(provider) => (
                    &mut table.scoped,
                    format!("{}/{name}", provider.trim().to_ascii_lowercase()),
                ),
                None => (&mut table.models, name),
            };
            price.validate(&key)?;
            if map.insert(key.clone().into_boxed_str(), price).is_some() {
                return Err(PricingError::Duplicate { model: key });
            }
        }
        Ok(table)
    }

    /// Adds the user's prices. A key is a target (`provider/model`, which beats any entry for
    /// the same model name) or a model name (`gpt-4.1`), which replaces every built-in entry of
    /// that name, provider-scoped ones included. Model names may hold a `/` themselves
    /// (`meta-llama/Llama-3.3-70B-Instruct-Turbo`), so a key with a `/` is taken both ways.
    ///
    /// The prices are taken as given; check them with [`Price::validate`] first.
    pub fn with_overrides(mut self, overrides: impl IntoIterator<Item = (String, Price)>) -> Self {
        for (key, price) in overrides {
            let key = key.trim().to_ascii_lowercase();
            if key.is_empty() {
                continue;
            }
            self.scoped.retain(|scoped, _| model_part(scoped) != key);
            if key.contains('/') {
                self.targets.insert(key.clone().into_boxed_str(), price);
            }
            self.models.insert(key.into_boxed_str(), price);
        }
        self
    }

    /// The price of `target`, freeway's `provider/model` id (`openai/gpt-4.1-2025-04-14`,
    /// `claude/claude-sonnet-4-5-20250929`, `openrouter/anthropic/claude-sonnet-4.5`).
    ///
    /// Names are tried from the most specific down: the model (everything after the first
    /// `/`), then each of its prefixes that ends just before a `-`, longest first. For each, an
    /// override of the whole target wins, then a provider-scoped entry, then a model entry. If
    /// none matches, the model's last `/` segment is tried the same way against model entries
    /// (`vendor/model` ids). Case is ignored.
    pub fn lookup(&self, target: &str) -> Option<&Price> {
        let mut stack = [0u8; STACK_TARGET];
        let heap;
        let target = if !target.bytes().any(|b| b.is_ascii_uppercase()) {
            target
        } else if let Some(buf) = stack.get_mut(..target.len()) {
            buf.copy_from_slice(target.as_bytes());
            buf.make_ascii_lowercase();
            // Lowercasing ASCII bytes keeps UTF-8 valid.
            std::str::from_utf8(buf).ok()?
        } else {
            heap = target.to_ascii_lowercase();
            heap.as_str()
        };
        let model_start = target.find('/').map_or(0, |slash| slash + 1);
        let model = &target[model_start..];
        for end in name_ends(model) {
            if model_start > 0 {
                let spelled_out = &target[..model_start + end];
                if let Some(price) = self
                    .targets
                    .get(spelled_out)
                    .or_else(|| self.scoped.get(spelled_out))
                {
                    return Some(price);
                }
            }
            if let Some(price) = self.models.get(&model[..end]) {
                return Some(price);
            }
        }
        let (_, last) = model.rsplit_once('/')?;
        name_ends(last).find_map(|end| self.models.get(&last[..end]))
    }

    /// What `usage` cost at `price`; see [`Price::cost`] for how cached tokens count.
    pub fn cost(&self, price: &Price, usage: &Usage) -> Cost {
        price.cost(usage)
    }

    /// The cost of `usage` on `target`, or `None` when the target is unpriced.
    pub fn cost_of(&self, target: &str, usage: &Usage) -> Option<Cost> {
        self.lookup(target).map(|price| price.cost(usage))
    }
}

/// Everything after the first `/`; the whole id when there is none.
fn model_part(target: &str) -> &str {
    target.split_once('/').map_or(target, |(_, model)| model)
}

/// Where the names to try end: `name` itself, then before each `-`, right to left.
fn name_ends(name: &str) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(name.len()).chain(name.rmatch_indices('-').map(|(dash, _)| dash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        PriceTable::builtin().expect("the shipped price table parses")
    }

    fn usage(input: u64, output: u64, read: u64, write: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: read,
            cache_write_tokens: write,
        }
    }

    fn price(input: f64, output: f64) -> Price {
        Price {
            input,
            output,
            cached_input: None,
            cache_write: None,
        }
    }

    fn input_price(table: &PriceTable, target: &str) -> Option<f64> {
        table.lookup(target).map(|p| p.input)
    }

    #[test]
    fn the_shipped_table_parses_and_every_price_is_finite_and_not_negative() {
        let table = table();
        assert!(table.models.len() > 100, "{} entries", table.models.len());
        for (name, price) in table.models.iter().chain(&table.scoped) {
            price.validate(name).expect("valid price");
        }
    }

    #[test]
    fn every_shipped_entry_is_found_by_its_own_name_and_its_dated_snapshots() {
        let raw: RawTable = toml::from_str(BUILTIN).expect("parses");
        let table = table();
        for entry in raw.model {
            let want = Price {
                input: entry.input,
                output: entry.output,
                cached_input: entry.cached_input,
                cache_write: entry.cache_write,
            };
            let provider = entry.provider.as_deref().unwrap_or("anyprovider");
            for target in [
                format!("{provider}/{}", entry.name),
                format!("{provider}/{}-2099-01-01", entry.name),
            ] {
                assert_eq!(table.lookup(&target), Some(&want), "{target}");
            }
        }
    }

    #[test]
    fn dated_snapshots_match_by_prefix_and_the_longest_entry_wins() {
        let table = table();
        assert_eq!(input_price(&table, "openai/gpt-4.1-2025-04-14"), Some(2.00));
        assert_eq!(
            input_price(&table, "openai/gpt-4.1-mini-2025-04-14"),
            Some(0.40)
        );
        assert_eq!(input_price(&table, "openai/gpt-4o-2024-08-06"), Some(2.50));
        assert_eq!(input_price(&table, "openai/gpt-4o-2024-05-13"), Some(5.00));
        assert_eq!(input_price(&table, "openai/gpt-5-codex"), Some(1.25));
        assert_eq!(
            input_price(&table, "openai/gpt-5-pro-2025-10-06"),
            Some(15.00)
        );
        assert_eq!(
            input_price(&table, "claude/claude-sonnet-4-5-20250929"),
            Some(3.00)
        );
        assert_eq!(
            input_price(&table, "claude/claude-opus-4-20250514"),
            Some(15.00)
        );
        assert_eq!(
            input_price(&table, "claude/claude-opus-4-5-20251101"),
            Some(5.00)
        );
        assert_eq!(
            input_price(&table, "claude/claude-3-5-haiku-latest"),
            Some(0.80)
        );
        assert_eq!(
            input_price(&table, "gemini/gemini-2.5-flash-lite-preview-09-2025"),
            Some(0.10)
        );
        assert_eq!(
            input_price(&table, "mistral/mistral-small-2506"),
            Some(0.10)
        );
    }

    #[test]
    fn a_prefix_counts_only_at_a_dash() {
        let table = table();
        // `gpt-5` must not price `gpt-5.9`, nor `o3` price `o3x`.
        assert_eq!(input_price(&table, "openai/gpt-5.9"), None);
        assert_eq!(input_price(&table, "openai/o3x"), None);
        assert_eq!(input_price(&table, "openai/gpt-4.1x"), None);
    }

    #[test]
    fn vendor_prefixed_ids_fall_back_to_their_last_segment() {
        let table = table();
        assert_eq!(
            input_price(&table, "openrouter/anthropic/claude-sonnet-4.5"),
            Some(3.00)
        );
        assert_eq!(
            input_price(&table, "openrouter/openai/gpt-4o-mini"),
            Some(0.15)
        );
        assert_eq!(
            input_price(&table, "openrouter/google/gemini-2.5-pro"),
            Some(1.25)
        );
        assert_eq!(
            input_price(&table, "gemini/models/gemini-2.0-flash"),
            Some(0.10)
        );
        assert_eq!(input_price(&table, "openrouter/x-ai/grok-4"), Some(3.00));
    }

    #[test]
    fn lookups_ignore_case_even_past_the_stack_buffer() {
        let table = table();
        assert_eq!(input_price(&table, "OpenAI/GPT-4.1"), Some(2.00));
        let long = format!("openai/GPT-4.1-{}", "X".repeat(400));
        assert_eq!(input_price(&table, &long), Some(2.00));
        assert_eq!(
            input_price(&table, "together/meta-llama/llama-3.3-70b-instruct-turbo"),
            Some(0.88)
        );
    }

    #[test]
    fn provider_scoped_entries_tell_hosts_of_one_model_apart() {
        let table = table();
        let scout = "meta-llama/llama-4-scout-17b-16e-instruct";
        assert_eq!(input_price(&table, &format!("groq/{scout}")), Some(0.11));
        assert_eq!(
            input_price(&table, &format!("together/{scout}")),
            Some(0.18)
        );
        assert_eq!(input_price(&table, &format!("elsewhere/{scout}")), None);
        // Together's FP8 Maverick must not fall back to Groq's shorter name.
        assert_eq!(
            input_price(
                &table,
                "together/meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8"
            ),
            Some(0.27)
        );
        assert_eq!(
            table
                .lookup("groq/openai/gpt-oss-120b")
                .and_then(|p| p.cached_input),
            Some(0.075)
        );
        assert_eq!(input_price(&table, "other/openai/gpt-oss-120b"), Some(0.15));
    }

    #[test]
    fn local_and_unknown_models_are_unpriced() {
        let table = table();
        for target in [
            "ollama/llama3.2:3b",
            "local/qwen2.5-0.5b",
            "lmstudio/whatever",
            "x",
        ] {
            assert_eq!(table.lookup(target), None, "{target}");
        }
        assert_eq!(table.cost_of("ollama/llama3.2", &usage(10, 10, 0, 0)), None);
    }

    #[test]
    fn overrides_win_and_a_target_override_beats_a_model_override() {
        let table = table().with_overrides([
            ("gpt-4.1".to_owned(), price(1.0, 1.0)),
            ("OpenAI/gpt-4.1".to_owned(), price(9.0, 9.0)),
            ("my-model".to_owned(), price(0.5, 0.5)),
            (
                "meta-llama/llama-4-scout-17b-16e-instruct".to_owned(),
                price(0.01, 0.01),
            ),
        ]);
        assert_eq!(input_price(&table, "openai/gpt-4.1-2025-04-14"), Some(9.0));
        assert_eq!(input_price(&table, "azure/gpt-4.1"), Some(1.0));
        // A target override of a family does not swallow a more specific built-in.
        assert_eq!(input_price(&table, "openai/gpt-4.1-mini"), Some(0.40));
        // The built-in, longer `gpt-4.1-mini` still wins over the bare override's prefix.
        assert_eq!(input_price(&table, "azure/gpt-4.1-mini"), Some(0.40));
        assert_eq!(input_price(&table, "vllm/my-model"), Some(0.5));
        // A bare override replaces provider-scoped built-ins of that model.
        assert_eq!(
            input_price(&table, "groq/meta-llama/llama-4-scout-17b-16e-instruct"),
            Some(0.01)
        );
    }

    #[test]
    fn bad_tables_are_rejected() {
        let dup = "[[model]]\nmatch = \"a\"\ninput = 1\noutput = 1\n\
                   [[model]]\nmatch = \"A\"\ninput = 2\noutput = 2\n";
        assert!(matches!(
            PriceTable::parse(dup),
            Err(PricingError::Duplicate { .. })
        ));
        let negative = "[[model]]\nmatch = \"a\"\ninput = -1\noutput = 1\n";
        assert!(matches!(
            PriceTable::parse(negative),
            Err(PricingError::InvalidPrice { field: "input", .. })
        ));
        let nan = "[[model]]\nmatch = \"a\"\ninput = 1\noutput = 1\ncached_input = nan\n";
        assert!(matches!(
            PriceTable::parse(nan),
            Err(PricingError::InvalidPrice {
                field: "cached_input",
                ..
            })
        ));
        let unknown = "[[model]]\nmatch = \"a\"\ninput = 1\noutput = 1\ncolour = 1\n";
        assert!(matches!(
            PriceTable::parse(unknown),
            Err(PricingError::Parse(_))
        ));
        let empty = "[[model]]\nmatch = \" \"\ninput = 1\noutput = 1\n";
        assert!(matches!(
            PriceTable::parse(empty),
            Err(PricingError::EmptyMatch)
        ));
    }

    #[test]
    fn plain_input_and_output_cost_exact_nanos() {
        let table = table();
        let gpt41 = table.lookup("openai/gpt-4.1").expect("priced");
        // 1,234 × $2/M + 567 × $8/M = $0.002468 + $0.004536.
        assert_eq!(table.cost(gpt41, &usage(1_234, 567, 0, 0)).nanos, 7_004_000);
        assert_eq!(table.cost(gpt41, &usage(0, 0, 0, 0)), Cost::ZERO);
    }

    #[test]
    fn openai_style_cached_tokens_are_part_of_the_input_count() {
        let table = table();
        let gpt41 = table.lookup("openai/gpt-4.1").expect("priced");
        // 10,000 prompt tokens of which 4,000 cached: 6,000 × $2/M + 4,000 × $0.50/M, plus
        // 500 × $8/M.
        let cost = table.cost(gpt41, &usage(10_000, 500, 4_000, 0));
        assert_eq!(cost.nanos, 12_000_000 + 2_000_000 + 4_000_000);
    }

    #[test]
    fn anthropic_reads_and_writes_have_their_own_rates() {
        let table = table();
        let sonnet = table
            .lookup("claude/claude-sonnet-4-5-20250929")
            .expect("priced");
        // Anthropic reported input 100, cache read 1,800, cache write 100; freeway counts
        // 2,000 input tokens. 100 × $3 + 1,800 × $0.30 + 100 × $3.75 + 50 × $15 (per M).
        let cost = table.cost(sonnet, &usage(2_000, 50, 1_800, 100));
        assert_eq!(cost.nanos, 300_000 + 540_000 + 375_000 + 750_000);
        assert_eq!(cost.usd(), 0.001965);
    }

    #[test]
    fn missing_cache_rates_fall_back_to_the_input_rate() {
        let p = price(1.0, 2.0);
        // 1,000 tokens at $1/M whatever their cache status, 10 output at $2/M.
        assert_eq!(
            p.cost(&usage(1_000, 10, 300, 200)).nanos,
            1_000_000 + 20_000
        );
    }

    #[test]
    fn costs_round_to_the_nearest_nano_once() {
        // $0.0028/M is 2.8 nano-dollars a token.
        let p = price(0.0028, 0.0);
        assert_eq!(p.cost(&usage(1, 0, 0, 0)).nanos, 3);
        assert_eq!(p.cost(&usage(2, 0, 0, 0)).nanos, 6);
        assert_eq!(p.cost(&usage(5, 0, 0, 0)).nanos, 14);
        // Exactly half a nano rounds up.
        assert_eq!(price(0.0005, 0.0).cost(&usage(1, 0, 0, 0)).nanos, 1);
        // Sub-nano parts of separate terms add up before rounding: 0.4 + 0.4 nanos.
        let split = Price {
            input: 0.0004,
            output: 0.0004,
            cached_input: None,
            cache_write: None,
        };
        assert_eq!(split.cost(&usage(1, 1, 0, 0)).nanos, 1);
    }

    #[test]
    fn inconsistent_cache_counts_never_go_negative() {
        let p = Price {
            input: 1.0,
            output: 0.0,
            cached_input: Some(0.5),
            cache_write: None,
        };
        // More cache reads than input: no fresh tokens, the reads still billed.
        assert_eq!(p.cost(&usage(100, 0, 300, 0)).nanos, 150_000);
    }

    #[test]
    fn invalid_override_prices_count_as_zero_and_huge_usage_saturates() {
        assert_eq!(
            price(f64::NAN, -1.0).cost(&usage(1_000, 1_000, 0, 0)),
            Cost::ZERO
        );
        let huge = price(1e6, 1e6).cost(&usage(u64::MAX, u64::MAX, 0, 0));
        assert_eq!(huge.nanos, i64::MAX);
    }

    #[test]
    fn costs_add_and_sum() {
        let a = Cost { nanos: 1_500 };
        let b = Cost { nanos: 2_500 };
        assert_eq!((a + b).nanos, 4_000);
        assert_eq!([a, b, a].iter().sum::<Cost>().nanos, 5_500);
        assert_eq!([a, b].into_iter().sum::<Cost>().usd(), 0.000004);
        let mut c = a;
        c += b;
        assert_eq!(c.nanos, 4_000);
        assert_eq!((Cost { nanos: i64::MAX } + a).nanos, i64::MAX);
    }
}
