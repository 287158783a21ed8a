//! The layers of the configuration, lowest first: the defaults, the TOML file, then what the
//! command line or the `POOLTRIAGE_*` environment gave (clap has already put the flag over the
//! variable). figment merges them and reads the result into one [`Settings`].

use super::settings::Settings;
use super::ConfigError;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command, FromArgMatches};
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::Figment;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Name of the config file looked for in the data directory.
pub const FILE_NAME: &str = "pooltriage.toml";

/// `serve`'s command line: where the config file is, and the settings.
#[derive(Debug, Clone)]
pub struct ServeArgs {
    /// TOML configuration file (default: `<data dir>/pooltriage.toml` when it exists).
    pub config: Option<PathBuf>,
    /// Every setting: given ones as given, the others at their defaults.
    pub settings: Settings,
    /// Ids of the settings the command line or the environment gave; only they outrank the file.
    pub given: BTreeSet<String>,
}

impl ServeArgs {
    /// Parses `serve`'s arguments (and the environment) as the `pooltriage serve` subcommand does.
    #[cfg(test)]
    pub fn parse_from<I: IntoIterator<Item = T>, T: Into<std::ffi::OsString> + Clone>(
        argv: I,
    ) -> Result<ServeArgs, clap::Error> {
        let cmd = ServeArgs::augment_args(Command::new("serve"));
        ServeArgs::from_arg_matches(&cmd.try_get_matches_from(argv)?)
    }

    /// The settings, layered: given > file > default.
    pub fn layered(&self) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(&self.settings));
        if let Some(path) = self.file()? {
            figment = figment.merge(Toml::file_exact(path));
        }
        let given = Value::serialize(&self.settings)
            .ok()
            .and_then(|v| v.into_dict())
            .map(|d| only_given(d, &self.given))
            .unwrap_or_default();
        figment
            .merge(Serialized::defaults(given))
            .extract()
            .map_err(|e| ConfigError::Invalid(one_line(&e)))
    }

    /// The config file: `--config` (which must exist), else `<data dir>/pooltriage.toml` if it
    /// exists. The data directory here is the given one (or the default), not the file's.
    fn file(&self) -> Result<Option<PathBuf>, ConfigError> {
        match &self.config {
            Some(path) => readable(path).map(|()| Some(path.clone())),
            None => {
                let path = self.settings.data_dir.join(FILE_NAME);
                Ok(path.is_file().then_some(path))
            }
        }
    }
}

fn readable(path: &Path) -> Result<(), ConfigError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })
}

/// figment's errors, all of them (one per bad key), on one line.
fn one_line(e: &figment::Error) -> String {
    e.clone()
        .into_iter()
        .map(|e| e.to_string().replace('\n', " "))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The entries of `dict` whose setting was given; nested tables (`auth`) are filtered alike.
fn only_given(dict: Dict, given: &BTreeSet<String>) -> Dict {
    dict.into_iter()
        .filter_map(|(key, value)| match value {
            _ if given.contains(&key) => Some((key, value)),
            Value::Dict(tag, inner) => {
                let inner = only_given(inner, given);
                (!inner.is_empty()).then_some((key, Value::Dict(tag, inner)))
            }
            _ => None,
        })
        .collect()
}

fn config_arg() -> clap::Arg {
    clap::Arg::new("config")
        .long("config")
        .env("POOLTRIAGE_CONFIG")
        .value_name("FILE")
        .value_parser(clap::value_parser!(PathBuf))
        .help("TOML configuration file (default: `<data dir>/pooltriage.toml` when it exists)")
}

impl FromArgMatches for ServeArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let given = m
            .ids()
            .filter(|id| {
                matches!(
                    m.value_source(id.as_str()),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                )
            })
            .map(|id| id.to_string())
            .collect();
        Ok(ServeArgs {
            config: m.get_one::<PathBuf>("config").cloned(),
            settings: Settings::from_arg_matches(m)?,
            given,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = ServeArgs::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for ServeArgs {
    fn augment_args(cmd: Command) -> Command {
        Settings::augment_args(cmd.arg(config_arg()))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        ServeArgs::augment_args(cmd)
    }
}
