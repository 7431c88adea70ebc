//! A project: its file, its connectors and its state store beside it.

use crate::config::{self, LoadedConfig};
use crate::connect::{self, dry_run::DryRunDestination};
use crate::pipeline::Engine;
use crate::store::Store;
use color_eyre::eyre::{Result, WrapErr, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const DEFAULT_FILE: &str = "cutover.toml";

pub struct Project {
    pub config: Arc<LoadedConfig>,
    pub store_path: PathBuf,
}

/// A preview engine and the scratch copy of the store it runs on (deleted when dropped).
pub struct Preview {
    pub engine: Engine,
    pub scratch: tempfile::TempDir,
}

impl Project {
    /// `path` is a project file, or a folder holding `cutover.toml`; `None` means the current folder.
    pub fn locate(path: Option<&Path>) -> Result<PathBuf> {
        let p = path.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        if p.is_dir() {
            let file = p.join(DEFAULT_FILE);
            if !file.is_file() {
                bail!("no {DEFAULT_FILE} in {} — name the project file, or run `cutover demo` to see one", p.display());
            }
            return Ok(file);
        }
        if !p.is_file() {
            bail!("project file {} does not exist", p.display());
        }
        Ok(p)
    }

    pub fn load(path: Option<&Path>) -> Result<Self> {
        let file = Self::locate(path)?;
        let config = config::load(&file)?;
        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "cutover".into());
        let store_path = config.base_dir().join(format!("{stem}.state.db"));
        Ok(Self { config: Arc::new(config), store_path })
    }

    pub fn store(&self) -> Result<Store> {
        Store::open(&self.store_path)
    }

    pub fn engine(&self) -> Result<Engine> {
        let source = connect::open_source(&self.config).map_err(|e| self.config.as_file_problem(e))?;
        let dest = connect::open_destination(&self.config, false).map_err(|e| self.config.as_file_problem(e))?;
        Engine::new(self.config.clone(), source, dest, self.store_path.clone())
    }

    /// An engine that reads both systems for real but writes nothing: it runs on a scratch copy
    /// of the state store, against a destination that only pretends to write.
    pub fn preview_engine(&self) -> Result<Preview> {
        let source = connect::open_source(&self.config).map_err(|e| self.config.as_file_problem(e))?;
        let dest = connect::open_destination(&self.config, true).map_err(|e| self.config.as_file_problem(e))?;
        let dest = Arc::new(DryRunDestination::new(dest));
        let scratch = tempfile::tempdir().wrap_err("creating a scratch folder for the preview")?;
        let copy = scratch.path().join("preview.state.db");
        if self.store_path.is_file() {
            let real = Store::open(&self.store_path)?;
            let mut target = rusqlite::Connection::open(&copy)?;
            let backup = rusqlite::backup::Backup::new(real.conn(), &mut target)?;
            backup.run_to_completion(1000, std::time::Duration::ZERO, None)?;
        }
        let engine = Engine::new(self.config.clone(), source, dest, copy)?;
        Ok(Preview { engine, scratch })
    }
}
