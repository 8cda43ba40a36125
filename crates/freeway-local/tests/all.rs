//! Integration tests of freeway-local, with the real default model (no fakes).
//!
//! The model is found through `FREEWAY_LOCAL_MODEL` or the default models directory; run
//! `scripts/fetch-model.sh` to fetch it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions"
)]

mod all {
    pub mod common;
    mod constrained;
    mod generation;
    mod load;
    mod pull;
}
