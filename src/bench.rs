//! placeholder
pub async fn command(_r: u64, _e: u64, _b: usize, _d: Option<std::path::PathBuf>) -> i32 {
    0
}
