//! `pooltriage tokens create|list|revoke`: manage API tokens from the shell.
//!
//! Works with or without the service running: it opens the same database as the service (the
//! SQLite file under the data directory, in WAL mode so a running service keeps serving, or the
//! PostgreSQL server of `--database-url`) and applies pending migrations, so the very first admin
//! token can be made before the service has ever started.

use crate::auth::{store, Role};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct TokensArgs {
    #[command(subcommand)]
    command: TokensCommand,
}

#[derive(Subcommand, Debug)]
enum TokensCommand {
    /// Create a token and print it on stdout. It is shown only this once: only its hash is kept.
    Create {
        /// Tenant (customer) the token belongs to: 1-64 characters of A-Z a-z 0-9 . _ -
        #[arg(long)]
        tenant: String,
        /// customer (own tenant's dumps), support (all dumps) or admin (all dumps + tokens).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A label for the token list (who or what uses it).
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        dir: DataDir,
        /// Print a JSON object (id, token, tenant, role, ...) instead of the bare token.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets), newest first.
    List {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id: it and its browser sessions stop working at once.
    Revoke {
        /// Token id, as printed by `tokens create` (stderr) or `tokens list`.
        id: String,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Args, Debug)]
struct DataDir {
    /// The service's data directory (holds pooltriage.db).
    #[arg(long, env = "POOLTRIAGE_DATA_DIR", value_name = "DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The service's database when it is not the SQLite file (`postgres://...`), as `serve`.
    #[arg(long, env = "POOLTRIAGE_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|e| e.to_string())
}

pub fn run(args: &TokensArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, &format!("cannot start the async runtime: {e}")),
    };
    rt.block_on(run_async(args))
}

async fn open(dir: &DataDir) -> Result<crate::db::Db, ExitCode> {
    let path = &dir.data_dir;
    if let Err(e) = crate::storage::private::create_data_dir(path) {
        return Err(fail(1, &e.to_string()));
    }
    crate::db::open(path, dir.database_url.as_deref())
        .await
        .map_err(|e| match &dir.database_url {
            Some(_) => fail(1, &e.to_string()),
            None => fail(
                1,
                &format!("{}: {e}", path.join(crate::db::DB_FILE).display()),
            ),
        })
}

async fn run_async(args: &TokensArgs) -> ExitCode {
    let now = store::now_unix();
    match &args.command {
        TokensCommand::Create {
            tenant,
            role,
            name,
            dir,
            json,
        } => {
            let pool = match open(dir).await {
                Ok(p) => p,
                Err(code) => return code,
            };
            match store::create_token(&pool, tenant, *role, name, now).await {
                Ok(t) => {
                    if *json {
                        println!("{}", serde_json::to_string_pretty(&t).unwrap_or_default());
                    } else {
                        println!("{}", t.token);
                        eprintln!(
                            "created token {} (tenant {}, role {}); the token is shown only now",
                            t.info.id, t.info.tenant, t.info.role
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e @ (store::StoreError::InvalidTenant(_) | store::StoreError::NameTooLong)) => {
                    fail(2, &e.to_string())
                }
                Err(e) => fail(1, &e.to_string()),
            }
        }
        TokensCommand::List { dir, json } => {
            let pool = match open(dir).await {
                Ok(p) => p,
                Err(code) => return code,
            };
            let tokens = match store::list_tokens(&pool).await {
                Ok(t) => t,
                Err(e) => return fail(1, &e.to_string()),
            };
            if *json {
                println!("{}", serde_json::json!({ "tokens": tokens }));
            } else {
                println!(
                    "{:<16}  {:<8}  {:<20}  {:<20}  {:<20}  NAME",
                    "ID", "ROLE", "TENANT", "CREATED", "STATUS"
                );
                for t in &tokens {
                    let status = match t.revoked_at {
                        Some(r) => format!("revoked {}", crate::db::rfc3339(r)),
                        None => "active".to_string(),
                    };
                    println!(
                        "{:<16}  {:<8}  {:<20}  {:<20}  {:<20}  {}",
                        t.id,
                        t.role,
                        t.tenant,
                        crate::db::rfc3339(t.created_at),
                        status,
                        t.name
                    );
                }
            }
            ExitCode::SUCCESS
        }
        TokensCommand::Revoke { id, dir } => {
            let pool = match open(dir).await {
                Ok(p) => p,
                Err(code) => return code,
            };
            match store::revoke_token(&pool, id, now).await {
                Ok(true) => {
                    eprintln!("revoked token {id}");
                    ExitCode::SUCCESS
                }
                Ok(false) => fail(2, &format!("no active token with id {id:?}")),
                Err(e) => fail(1, &e.to_string()),
            }
        }
    }
}

fn fail(code: u8, msg: &str) -> ExitCode {
    eprintln!("pooltriage tokens: {msg}");
    ExitCode::from(code)
}
