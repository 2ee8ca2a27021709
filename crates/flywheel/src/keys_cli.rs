//! `flywheel keys ...`: manage tenants' virtual keys directly in the database, with the server up or down.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use gateway::{Gateway, KeyInfo, KeyUpdate, NewKey, Rejection};

/// `flywheel keys` flags.
#[derive(Args)]
pub struct KeysArgs {
    /// Directory holding the database [default: ./.flywheel]
    #[arg(long, env = "FLYWHEEL_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// A shared PostgreSQL database instead of SQLite in the data directory
    #[arg(long, env = "FLYWHEEL_DATABASE_URL", hide_env_values = true, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key for a tenant and print its secret (shown this once only) on stdout.
    Create {
        /// The tenant the key spends for.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        limits: LimitArgs,
        /// The period the budget covers: total, daily or monthly [default: total]
        #[arg(long, value_parser = parse_period, default_value = "total")]
        budget_period: gateway::BudgetPeriod,
    },
    /// List keys (never their secrets).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Change a key's limits in place; what is not named stays as it is.
    Update {
        /// The key's id (`key_...`).
        id: String,
        #[command(flatten)]
        limits: LimitArgs,
        /// The period the budget covers: total, daily or monthly.
        #[arg(long, value_parser = parse_period)]
        budget_period: Option<gateway::BudgetPeriod>,
        /// Restrictions to lift, comma-separated: rpm, tpm, budget, models, expiry, guardrails, cache.
        #[arg(long, value_delimiter = ',', value_parser = ["rpm", "tpm", "budget", "models", "expiry", "guardrails", "cache"])]
        clear: Vec<String>,
    },
    /// Give a key a new secret and print it; the old secret stops working at once.
    Rotate {
        /// The key's id (`key_...`).
        id: String,
    },
    /// Revoke a key; it stops working at once.
    Revoke {
        /// The key's id (`key_...`).
        id: String,
    },
}

/// What `keys create` sets and `keys update` changes; left out: no restriction (create) or unchanged (update).
#[derive(Args)]
struct LimitArgs {
    /// A label for people.
    #[arg(long)]
    name: Option<String>,
    /// Requests per minute.
    #[arg(long)]
    rpm: Option<u32>,
    /// Tokens per minute.
    #[arg(long)]
    tpm: Option<u32>,
    /// Spending limit in US dollars.
    #[arg(long)]
    budget_usd: Option<f64>,
    /// Models the key may call, comma-separated [default: all]
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    /// Days from now until the key expires [default: never]
    #[arg(long)]
    expires_in_days: Option<u32>,
}

impl LimitArgs {
    fn budget_micros(&self) -> Result<Option<i64>, gateway::GatewayError> {
        self.budget_usd.map(gateway::usd_to_micros).transpose()
    }

    fn expires_at(&self) -> Option<i64> {
        self.expires_in_days
            .map(|days| gateway::unix_seconds() + i64::from(days) * 86_400)
    }
}

fn parse_period(text: &str) -> Result<gateway::BudgetPeriod, String> {
    match text {
        "total" | "daily" | "monthly" => Ok(gateway::BudgetPeriod::parse(text)),
        other => Err(format!("'{other}' is not a budget period; use total, daily or monthly")),
    }
}

/// Runs a `flywheel keys` command.
pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.unwrap_or_else(|| PathBuf::from(".flywheel"));
    let db = crate::open_database(args.database_url.as_deref(), &data_dir).await?;
    let gateway = Gateway::open(db.clone(), None)
        .await
        .context("preparing the gateway's tables")?;
    let keys = gateway.keys();
    let outcome = async {
        match args.command {
            KeysCommand::Create {
                tenant,
                limits,
                budget_period,
            } => {
                let new = NewKey {
                    tenant,
                    budget_micros: limits.budget_micros()?,
                    expires_at: limits.expires_at(),
                    name: limits.name,
                    models: limits.models,
                    rpm: limits.rpm,
                    tpm: limits.tpm,
                    budget_period,
                    metadata: None,
                    guardrails: None,
                    cache: None,
                };
                let issued = keys.create(new).await?;
                eprintln!("created {} for tenant {}", issued.info.id, issued.info.tenant);
                outln!("{}", issued.key);
            }
            KeysCommand::List { json } => {
                let all = keys.list().await?;
                if json {
                    outln!("{}", serde_json::to_string_pretty(&all)?);
                } else {
                    print_table(&all);
                }
            }
            KeysCommand::Update {
                id,
                limits,
                budget_period,
                clear,
            } => {
                let cleared = |what: &str| clear.iter().any(|item| item == what);
                // A value to set, a restriction to lift (`Some(None)`), or no change (`None`).
                fn change<T>(value: Option<T>, lift: bool) -> Option<Option<T>> {
                    if lift { Some(None) } else { value.map(Some) }
                }
                let update = KeyUpdate {
                    budget_micros: change(limits.budget_micros()?, cleared("budget")),
                    expires_at: change(limits.expires_at(), cleared("expiry")),
                    name: limits.name.map(Some),
                    models: change(limits.models, cleared("models")),
                    rpm: change(limits.rpm, cleared("rpm")),
                    tpm: change(limits.tpm, cleared("tpm")),
                    budget_period,
                    metadata: None,
                    guardrails: change(None, cleared("guardrails")),
                    cache: change(None, cleared("cache")),
                };
                let key = keys.update(&id, update).await?;
                eprintln!("updated {} (tenant {})", key.id, key.tenant);
                print_table(std::slice::from_ref(&key));
            }
            KeysCommand::Rotate { id } => {
                let issued = keys.rotate(&id).await?;
                eprintln!("rotated {}", issued.info.id);
                outln!("{}", issued.key);
            }
            KeysCommand::Revoke { id } => {
                let key = keys.revoke(&id).await?;
                eprintln!("revoked {} (tenant {})", key.id, key.tenant);
            }
        }
        anyhow::Ok(())
    }
    .await;
    db.close().await;
    outcome
}

fn print_table(keys: &[KeyInfo]) {
    outln!(
        "{:<36}  {:<16}  {:<12}  {:<8}  {:<8}  {:<12}  {:<20}  status",
        "id",
        "tenant",
        "prefix",
        "rpm",
        "tpm",
        "budget usd",
        "models"
    );
    for key in keys {
        let limit = |value: Option<u32>| value.map_or_else(|| "-".to_owned(), |n| n.to_string());
        let budget = key
            .budget_micros
            .map_or_else(|| "-".to_owned(), |micros| format!("{:.2}", micros as f64 / 1e6));
        let models = key
            .models
            .as_ref()
            .map_or_else(|| "all".to_owned(), |models| models.join(","));
        let status = match key.rejection() {
            Some(Rejection::Revoked) => "revoked",
            Some(Rejection::Expired) => "expired",
            Some(Rejection::Unknown) | None => "active",
        };
        outln!(
            "{:<36}  {:<16}  {:<12}  {:<8}  {:<8}  {:<12}  {:<20}  {status}",
            key.id,
            key.tenant,
            key.prefix,
            limit(key.rpm),
            limit(key.tpm),
            budget,
            models
        );
    }
}
