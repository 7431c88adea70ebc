//! Record linkage (issue #15), the first pieces: field comparisons with levels, and
//! Fellegi–Sunter weights estimated from the data by EM. Not yet wired into dedupe: the
//! engine still matches by exact keys in order (see `dedupe`).

pub mod compare;
pub mod em;
pub mod link;
