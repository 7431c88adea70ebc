//! Record linkage (issue #15): matching people, not strings. Field comparisons with levels
//! (`compare`), Fellegi–Sunter weights estimated from the data by EM (`em`), blocking and the
//! estimation (`link`), an object's linkage as the project file sets it (`setup`), the records a
//! run may link to (`index`), and its set-up when an object's pass starts (`load`). The batch
//! uses it in `batch::link` for objects whose `match` is a table.

pub mod compare;
pub mod em;
pub mod frequency;
pub mod index;
pub mod link;
mod load;
pub mod setup;

pub use load::SAMPLE;
