//! `flywheel agents ...`: scaffold an agent spec, and evaluate the retail service agent (pass^1..pass^k) with
//! the scripted agent or any embedded model, the customer scripted or played by a model.

use std::path::PathBuf;
use std::sync::Arc;

use agents::eval::{self, AgentPlayer, CustomerPlayer};
use agents::{AgentSpec, GatewayModels, ModelClient};
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use crate::models;

/// `flywheel agents` flags.
#[derive(Args)]
pub struct AgentsArgs {
    #[command(subcommand)]
    command: AgentsCommand,
}

#[derive(Subcommand)]
enum AgentsCommand {
    /// Write a new agent spec, NAME.toml, to edit.
    New {
        /// The agent's name: lower-case letters, digits, '-' or '_'.
        name: String,
        /// Where the spec goes [default: <data-dir>/agents, which `flywheel up` loads]
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The gateway model it uses.
        #[arg(long, default_value = models::CHAT_MODEL_ID)]
        model: String,
        /// Directory holding flywheel's data [default: ./.flywheel]
        #[arg(long, env = "FLYWHEEL_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Evaluate an agent on a domain's tasks and print pass^1..pass^k.
    Eval {
        /// The domain: retail.
        #[arg(value_enum)]
        domain: Domain,
        /// A task file in the format of tasks_train.json [default: the built-in training tasks]
        #[arg(long)]
        tasks: Option<PathBuf>,
        /// The store the tasks run on [default: the built-in store]
        #[arg(long)]
        db: Option<PathBuf>,
        /// The agent's model: `scripted` (plays each task's gold actions by the policy, to check the runtime
        /// and tools) or an embedded model's id.
        #[arg(long, default_value = "scripted")]
        model: String,
        /// Who plays the customer.
        #[arg(long, value_enum, default_value_t = CustomerKind::Scripted)]
        customer: CustomerKind,
        /// The customer's model, with `--customer model` [default: the agent's model, or the built-in chat model]
        #[arg(long)]
        customer_model: Option<String>,
        /// Trials per task.
        #[arg(long, default_value_t = 1)]
        k: usize,
        /// Only the first N tasks.
        #[arg(long)]
        limit: Option<usize>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Directory holding the embedded models [default: <data-dir>/models]
        #[arg(long, env = "FLYWHEEL_MODELS_DIR")]
        models_dir: Option<PathBuf>,
        /// Directory holding flywheel's data [default: ./.flywheel]
        #[arg(long, env = "FLYWHEEL_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Threads for the chat model.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Domain {
    Retail,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CustomerKind {
    Scripted,
    Model,
}

/// Runs a `flywheel agents` command.
pub async fn run(args: AgentsArgs) -> anyhow::Result<()> {
    match args.command {
        AgentsCommand::New {
            name,
            dir,
            model,
            data_dir,
        } => {
            let dir = dir.unwrap_or_else(|| data_dir_or_default(data_dir).join("agents"));
            let text = AgentSpec::scaffold(&name, &model);
            AgentSpec::parse(&text).map_err(|message| anyhow::anyhow!("{message}"))?;
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let path = dir.join(format!("{name}.toml"));
            if path.exists() {
                anyhow::bail!("{} already exists", path.display());
            }
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
            outln!("wrote {}", path.display());
            Ok(())
        }
        AgentsCommand::Eval {
            domain: Domain::Retail,
            tasks,
            db,
            model,
            customer,
            customer_model,
            k,
            limit,
            json,
            models_dir,
            data_dir,
            threads,
        } => {
            if k == 0 {
                anyhow::bail!("--k must be at least 1");
            }
            let tasks = match tasks {
                Some(path) => eval::load_tasks(&path).map_err(anyhow::Error::msg)?,
                None => serde_json::from_str(agents::retail::TRAIN_TASKS).context("the built-in tasks")?,
            };
            let tasks: Vec<eval::Task> = tasks.into_iter().take(limit.unwrap_or(usize::MAX)).collect();
            let base = match db {
                Some(path) => agents::retail::RetailDb::load(&path)?,
                None => serde_json::from_str(agents::retail::DEMO_STORE).context("the built-in store")?,
            };
            let wants_model = model != "scripted" || customer == CustomerKind::Model;
            let gateway_models: Option<Arc<dyn ModelClient>> = if wants_model {
                let models_dir = models_dir.unwrap_or_else(|| data_dir_or_default(data_dir).join("models"));
                Some(Arc::new(embedded_gateway(&models_dir, threads).await?))
            } else {
                None
            };
            let agent = match (&gateway_models, model.as_str()) {
                (_, "scripted") => AgentPlayer::Scripted,
                (Some(models), _) => AgentPlayer::Model {
                    models: models.clone(),
                    model: model.clone(),
                },
                (None, _) => unreachable_gateway()?,
            };
            let customer = match (customer, &gateway_models) {
                (CustomerKind::Scripted, _) => CustomerPlayer::Scripted,
                (CustomerKind::Model, Some(models)) => CustomerPlayer::Model {
                    models: models.clone(),
                    model: customer_model.unwrap_or_else(|| {
                        if model == "scripted" {
                            models::CHAT_MODEL_ID.to_owned()
                        } else {
                            model.clone()
                        }
                    }),
                },
                (CustomerKind::Model, None) => unreachable_gateway()?,
            };
            let journal = agents::Journal::open(store::Database::open_in_memory().await?).await?;
            let progress = indicatif::ProgressBar::new((tasks.len() * k) as u64).with_message("running tasks");
            progress.set_style(
                indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({eta})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            if json {
                progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let report = eval::evaluate(&journal, &base, &tasks, k, &agent, &customer, |_| progress.inc(1)).await?;
            progress.finish_and_clear();
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(());
            }
            print_report(&report, &model);
            Ok(())
        }
    }
}

fn unreachable_gateway<T>() -> anyhow::Result<T> {
    anyhow::bail!("a model was asked for but no gateway was started")
}

fn data_dir_or_default(data_dir: Option<PathBuf>) -> PathBuf {
    data_dir.unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_DATA_DIR))
}

/// An in-process gateway serving every embedded chat model in `models_dir`, its ledger in memory.
async fn embedded_gateway(models_dir: &std::path::Path, threads: usize) -> anyhow::Result<GatewayModels> {
    let db = store::Database::open_in_memory().await?;
    let gateway = gateway::Gateway::open(db, None).await?;
    for model in models::embedded_models(models_dir)? {
        if model.kind != models::Kind::Chat {
            continue;
        }
        let path = model.path.clone();
        let chat = tokio::task::spawn_blocking(move || {
            inference::ChatModel::load(
                &path,
                inference::ChatModelOptions {
                    threads,
                    ..inference::ChatModelOptions::default()
                },
            )
        })
        .await?
        .with_context(|| {
            format!(
                "loading {} (fetch it with scripts/fetch-models {})",
                model.id,
                models_dir.display()
            )
        })?;
        gateway.serve_embedded_chat(&model.id, chat);
    }
    Ok(GatewayModels::new(gateway))
}

fn print_report(report: &eval::Report, model: &str) {
    outln!(
        "retail service agent, model {model}: {} tasks × {} trials",
        report.tasks,
        report.k
    );
    for (j, value) in report.pass_hat.iter().enumerate() {
        outln!("  pass^{}  {:.3}", j + 1, value);
    }
    let failed: Vec<&eval::Trial> = report.trials.iter().filter(|trial| !trial.passed).collect();
    if failed.is_empty() {
        return;
    }
    outln!("failed trials:");
    for trial in failed.iter().take(20) {
        let mut why = Vec::new();
        if !trial.db_matches {
            why.push(format!("store differs ({})", trial.differences.join("; ")));
        }
        if !trial.missing_facts.is_empty() {
            why.push(format!("did not say {}", trial.missing_facts.join(", ")));
        }
        if let Some(stopped) = &trial.stopped {
            why.push(format!("stopped: {stopped}"));
        }
        outln!("  task {:>4}: {}", trial.task, why.join("; "));
    }
    if failed.len() > 20 {
        outln!("  ... and {} more", failed.len() - 20);
    }
}
