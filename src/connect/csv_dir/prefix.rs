//! What a checkpoint remembers of a CSV file: a hash of every byte before the position it
//! stopped at. A resumed read hashes the file up to that position again; if the export was
//! edited there since (a row fixed, one deleted), the position no longer means the same row and
//! the read refuses to go on from it, instead of starting mid-row or skipping rows.

use color_eyre::eyre::{Result, WrapErr};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a (stable across versions, so a newer binary can resume an older run's checkpoint) of
/// the bytes before `upto`, extended as the reader moves on.
pub struct Prefix {
    file: File,
    upto: u64,
    hash: u64,
}

impl Prefix {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).wrap_err_with(|| format!("cannot open {}", path.display()))?;
        Ok(Self { file, upto: 0, hash: OFFSET })
    }

    /// The hash of the bytes before `to`, reading only what was not hashed yet.
    pub fn at(&mut self, to: u64) -> Result<u64> {
        if to < self.upto {
            (self.upto, self.hash) = (0, OFFSET);
        }
        self.file.seek(SeekFrom::Start(self.upto))?;
        let mut buf = vec![0u8; 1 << 16];
        while self.upto < to {
            let want = ((to - self.upto) as usize).min(buf.len());
            let n = self.file.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            for b in &buf[..n] {
                self.hash = (self.hash ^ u64::from(*b)).wrapping_mul(PRIME);
            }
            self.upto += n as u64;
        }
        Ok(self.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_of_a_prefix_is_the_same_however_it_is_reached() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.csv");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        let mut stepwise = Prefix::open(&path).expect("open");
        for to in [10, 70_000, 70_001, 150_000] {
            stepwise.at(to).expect("hash");
        }
        let mut at_once = Prefix::open(&path).expect("open");
        assert_eq!(stepwise.at(150_000).expect("hash"), at_once.at(150_000).expect("hash"));
        assert_ne!(at_once.at(149_999).expect("hash"), stepwise.at(150_000).expect("hash"));
        let mut edited = bytes.clone();
        edited[5] ^= 1;
        std::fs::write(&path, &edited).expect("write");
        assert_ne!(Prefix::open(&path).expect("open").at(150_000).expect("hash"), stepwise.at(150_000).expect("hash"));
    }
}
