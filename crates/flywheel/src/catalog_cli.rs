//! `flywheel catalog ...`: import product files into the catalog database (with the server up or down: a
//! running server picks the change up within seconds), and measure search relevance.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use commerce::relevance::{self, SEARCH_METHODS};

use crate::models::{self, EMBEDDING_MODEL_ID};

/// The tenant the evaluation's embedding calls are accounted to (in an in-memory ledger).
const EVALUATION_TENANT: &str = "relevance-evaluation";

/// `flywheel catalog` flags.
#[derive(Args)]
pub struct CatalogArgs {
    #[command(subcommand)]
    command: CatalogCommand,
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Write listings for sellers' notes in bulk: one per row of a CSV, appended to a JSON Lines file as each
    /// is written, so an interrupted run resumes where it stopped.
    Listings {
        /// A CSV file with a header; each row's notes column describes one product.
        input: PathBuf,
        /// Where the listings go (JSON Lines: line, notes, listing, quality, or the row's error).
        #[arg(long)]
        output: PathBuf,
        /// The column holding the notes.
        #[arg(long, default_value = "notes")]
        column: String,
        /// Directory holding the embedded models [default: <data-dir>/models]
        #[arg(long, env = "FLYWHEEL_MODELS_DIR")]
        models_dir: Option<PathBuf>,
        /// Directory holding flywheel's data (the ledger the model calls are written to) [default: ./.flywheel]
        #[arg(long, env = "FLYWHEEL_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Threads for the chat model.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Import a product file: new products are added, changed ones updated in place, bad rows reported by
    /// line and skipped.
    Import {
        /// The product file.
        path: PathBuf,
        /// wands, csv or jsonl [default: detected from the first line]
        #[arg(long, value_parser = parse_format)]
        format: Option<commerce::CatalogFormat>,
        /// Which column fills a product field, as field=column (repeatable), e.g. --field name=title.
        /// Fields: id, name, description, price, rating, review_count, class, category, features.
        #[arg(long = "field", value_name = "FIELD=COLUMN")]
        fields: Vec<String>,
        /// Also remove the products the file does not have.
        #[arg(long)]
        replace: bool,
        /// Directory holding the database [default: ./.flywheel]
        #[arg(long, env = "FLYWHEEL_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// A shared PostgreSQL database instead of SQLite in the data directory
        #[arg(long, env = "FLYWHEEL_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure search relevance: nDCG@10 per search method (bm25, bm25 + typos, dense, hybrid,
    /// hybrid + rerank) on judged queries in the WANDS format.
    Eval {
        /// A directory holding `query.csv` and `label.csv` (WANDS format, tab-separated).
        #[arg(long)]
        judgments: PathBuf,
        /// The WANDS product file to search [default: the built-in demo catalog]
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// Directory holding the embedded models [default: <data-dir>/models]
        #[arg(long, env = "FLYWHEEL_MODELS_DIR")]
        models_dir: Option<PathBuf>,
        /// Directory holding flywheel's data [default: ./.flywheel]
        #[arg(long, env = "FLYWHEEL_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Where the product vectors are cached [default: <data-dir>/search]
        #[arg(long, env = "FLYWHEEL_VECTOR_CACHE_DIR")]
        vector_cache_dir: Option<PathBuf>,
        /// Print JSON (with nDCG@10 per query) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn parse_format(name: &str) -> Result<commerce::CatalogFormat, String> {
    commerce::CatalogFormat::parse(name).map_err(|error| error.to_string())
}

/// Rejected rows printed in the table view; `--json` lists them all.
const REJECTS_SHOWN: usize = 20;

pub async fn run(args: CatalogArgs) -> anyhow::Result<()> {
    match args.command {
        CatalogCommand::Listings {
            input,
            output,
            column,
            models_dir,
            data_dir,
            threads,
        } => write_listings(input, output, column, models_dir, data_dir, threads).await,
        CatalogCommand::Import {
            path,
            format,
            fields,
            replace,
            data_dir,
            database_url,
            json,
        } => {
            let mapping = commerce::FieldMapping::parse(fields.iter().map(String::as_str))?;
            let file = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_DATA_DIR));
            let db = crate::open_database(database_url.as_deref(), &data_dir).await?;
            let store = commerce::CatalogStore::open(db.clone()).await?;
            let name = path.display().to_string();
            let imported = commerce::import_catalog(&store, &file, format, &mapping, replace, &name).await;
            db.close().await;
            let imported = imported?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&imported)?);
                return Ok(());
            }
            outln!(
                "{name}: {} products ({} new, {} updated, {} unchanged{}), {} rows skipped; catalog version {}",
                imported.valid,
                imported.inserted,
                imported.updated,
                imported.unchanged,
                if replace {
                    format!(", {} removed", imported.removed)
                } else {
                    String::new()
                },
                imported.rejected.len(),
                imported.version
            );
            for row in imported.rejected.iter().take(REJECTS_SHOWN) {
                outln!("  line {}: {}", row.line, row.reason);
            }
            if imported.rejected.len() > REJECTS_SHOWN {
                outln!(
                    "  ... and {} more (--json lists them all)",
                    imported.rejected.len() - REJECTS_SHOWN
                );
            }
            Ok(())
        }
        CatalogCommand::Eval {
            judgments,
            catalog,
            models_dir,
            data_dir,
            vector_cache_dir,
            json,
        } => {
            let queries = relevance::read_wands_judgments(&judgments.join("query.csv"), &judgments.join("label.csv"))?;
            let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_DATA_DIR));
            let models_dir = models_dir.unwrap_or_else(|| data_dir.join("models"));
            let embedder_path = models::embedded_models(&models_dir)?
                .into_iter()
                .find(|model| model.id == EMBEDDING_MODEL_ID)
                .map(|model| model.path)
                .context("the models directory lists no embedding model")?;
            let embedder = tokio::task::spawn_blocking(move || {
                inference::Embedder::load(&embedder_path, inference::EmbedderOptions::default())
            })
            .await??;

            let gateway = gateway::Gateway::open(store::Database::open_in_memory().await?, None).await?;
            gateway.serve_embedded_embedder(EMBEDDING_MODEL_ID, embedder);
            let storefront = commerce::Storefront::new().with_embedder(commerce::TextEmbedder::new(
                gateway.client(EVALUATION_TENANT),
                EMBEDDING_MODEL_ID,
            ));
            let loader = storefront.clone();
            tokio::task::spawn_blocking(move || match &catalog {
                Some(path) => loader.load(path),
                None => loader.load_demo(),
            })
            .await??;
            let progress = indicatif::ProgressBar::new(0).with_message("embedding products");
            progress.set_style(
                indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({eta})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            if json {
                progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            storefront
                .build_vectors(
                    Some(&vector_cache_dir.unwrap_or_else(|| data_dir.join("search"))),
                    |done, total| {
                        progress.set_length(total as u64);
                        progress.set_position(done as u64);
                    },
                )
                .await?;
            progress.finish_and_clear();

            let scores = relevance::evaluate(&storefront, &queries, &SEARCH_METHODS).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&scores)?);
            } else {
                outln!("nDCG@10 over {} queries ({})", queries.len(), judgments.display());
                outln!("{:<18} {:>8} {:>10}", "method", "nDCG@10", "ms/query");
                for score in &scores {
                    outln!(
                        "{:<18} {:>8.3} {:>10.2}",
                        score.method,
                        score.ndcg_at_10,
                        score.mean_search_ms
                    );
                }
            }
            Ok(())
        }
    }
}

/// The tenant bulk listing calls are accounted to.
const SELLERS_TENANT: &str = "sellers";

async fn write_listings(
    input: PathBuf,
    output: PathBuf,
    column: String,
    models_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    threads: usize,
) -> anyhow::Result<()> {
    use std::io::Write as _;

    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(&input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("{} has no header row", input.display()))?;
    let notes_at = header
        .iter()
        .position(|name| name.trim() == column)
        .with_context(|| format!("{} has no '{column}' column", input.display()))?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("reading {}", input.display()))?;
        let line = record.position().map_or(0, csv::Position::line);
        rows.push((line, record.get(notes_at).unwrap_or_default().trim().to_owned()));
    }
    // Rows already in the output were written by an earlier run: resume after them.
    let done: std::collections::HashSet<u64> = match std::fs::read_to_string(&output) {
        Ok(text) => text
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|entry| entry["line"].as_u64())
            .collect(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", output.display())),
    };
    let pending: Vec<&(u64, String)> = rows.iter().filter(|(line, _)| !done.contains(line)).collect();

    let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_DATA_DIR));
    let models_dir = models_dir.unwrap_or_else(|| data_dir.join("models"));
    let chat_path = models::embedded_models(&models_dir)?
        .into_iter()
        .find(|model| model.id == models::CHAT_MODEL_ID)
        .map(|model| model.path)
        .context("the models directory lists no chat model")?;
    let chat = tokio::task::spawn_blocking(move || {
        inference::ChatModel::load(
            &chat_path,
            inference::ChatModelOptions {
                threads,
                ..inference::ChatModelOptions::default()
            },
        )
    })
    .await??;
    let db = crate::open_database(None, &data_dir).await?;
    let gateway = gateway::Gateway::open(db.clone(), None).await?;
    gateway.serve_embedded_chat(models::CHAT_MODEL_ID, chat);
    let storefront = commerce::Storefront::new();
    let loader = storefront.clone();
    tokio::task::spawn_blocking(move || loader.load_demo()).await??;
    let writer = commerce::ListingWriter::new(
        gateway.client(SELLERS_TENANT).for_feature("listing-writer"),
        models::CHAT_MODEL_ID,
    );

    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&output)
        .with_context(|| format!("cannot write {}", output.display()))?;
    let progress = indicatif::ProgressBar::new(rows.len() as u64).with_message("writing listings");
    progress.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    progress.set_position(done.len() as u64);
    let (mut written, mut failed) = (0usize, 0usize);
    for (line, notes) in pending {
        let entry = match writer.write(&storefront, notes).await {
            Ok(listing) => {
                written += 1;
                let quality = commerce::score_listing(&listing, Some(notes));
                serde_json::json!({"line": line, "notes": notes, "listing": listing, "quality": quality})
            }
            Err(error) => {
                failed += 1;
                serde_json::json!({"line": line, "notes": notes, "error": error.to_string()})
            }
        };
        // One line per row, flushed, so a kill loses at most the row being written.
        writeln!(file, "{entry}")
            .and_then(|()| file.flush())
            .with_context(|| format!("writing {}", output.display()))?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    gateway.ledger().flush().await;
    db.close().await;
    outln!(
        "{}: {written} listings written, {failed} rows failed, {} already done; in {}",
        input.display(),
        done.len(),
        output.display()
    );
    Ok(())
}
