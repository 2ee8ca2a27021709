//! `flywheel ask`: a plain-language question about the platform's own data, read into a query over the
//! documented tables (docs/ask.md), run read-only, and answered with its SQL shown; `--eval FILE` scores the
//! reader on a question set instead.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use insights::ask;

/// `flywheel ask` flags.
#[derive(Args)]
pub struct AskArgs {
    /// The question, e.g. "which model cost most last week per tenant?"
    question: Option<String>,
    /// Score the reader on a question set (JSON, as data/ask/questions.json) instead of answering
    #[arg(long, conflicts_with = "question")]
    eval: Option<PathBuf>,
    /// Directory holding the database [default: ./.flywheel]
    #[arg(long, env = "FLYWHEEL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A shared PostgreSQL database instead of SQLite in the data directory
    #[arg(long, env = "FLYWHEEL_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Runs `flywheel ask`.
pub async fn run(args: AskArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.eval {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let items: Vec<ask::EvalItem> =
            serde_json::from_str(&text).with_context(|| format!("{} is not a question set", path.display()))?;
        let evaluation = ask::evaluate(&items, ask::read_by_rules);
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&evaluation)?);
        } else {
            outln!(
                "rule reader: {}/{} questions read as expected ({:.1}%)",
                evaluation.correct,
                evaluation.total,
                evaluation.accuracy() * 100.0
            );
            for (question, reading) in &evaluation.misses {
                outln!("  miss: {question}\n        read as {reading}");
            }
        }
        return Ok(());
    }
    let Some(text) = args.question.filter(|text| !text.trim().is_empty()) else {
        anyhow::bail!("ask a question, e.g. flywheel ask \"which model cost most last week per tenant?\"");
    };
    let question = ask::read_by_rules(&text);
    ask::check(&question).map_err(|reason| anyhow::anyhow!("cannot answer that: {reason}"))?;
    let data_dir = args.data_dir.unwrap_or_else(|| PathBuf::from(".flywheel"));
    let db = crate::open_database(args.database_url.as_deref(), &data_dir).await?;
    // The tables the question reads, created if this database has never served.
    gateway::Gateway::open(db.clone(), None)
        .await
        .context("preparing the gateway's tables")?;
    commerce::ShopperEvents::open(db.clone())
        .await
        .context("preparing the shopper events table")?;
    let answer = ask::answer(&db, &question, jiff::Timestamp::now()).await;
    db.close().await;
    let answer = answer?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    outln!("{}", answer.summary);
    outln!("sql: {}", answer.sql);
    outln!("{}", answer.columns.join("\t"));
    for row in &answer.rows {
        let mut cells = row.labels.clone();
        cells.push(format!("{}", row.value));
        outln!("{}", cells.join("\t"));
    }
    Ok(())
}
