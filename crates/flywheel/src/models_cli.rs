//! `flywheel models ...`: list, add and remove the embedded models of a models directory.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::models::{self, EmbeddedModel, Kind, NewModel};

/// `flywheel models` flags.
#[derive(Args)]
pub struct ModelsArgs {
    /// Directory holding the embedded models [default: <data-dir>/models]
    #[arg(long, env = "FLYWHEEL_MODELS_DIR", global = true)]
    models_dir: Option<PathBuf>,
    /// Directory holding flywheel's data [default: ./.flywheel]
    #[arg(long, env = "FLYWHEEL_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// List the embedded models: built in and added, with what their files say.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a GGUF chat model (any architecture and quantization llama.cpp runs) or a sentence-transformers
    /// embedder directory; `flywheel up` serves it from its next start.
    Add {
        /// The .gguf file, or the embedder's directory.
        path: PathBuf,
        /// The model's id in the API [default: the file name, lower-cased]
        #[arg(long)]
        id: Option<String>,
        /// Register the file where it is instead of copying it into the models directory.
        #[arg(long)]
        link: bool,
    },
    /// Remove an added model (and its copy in the models directory).
    Remove {
        /// The model's id.
        id: String,
    },
}

/// One row of `models list`.
#[derive(Serialize)]
struct Listing {
    id: String,
    kind: &'static str,
    path: PathBuf,
    built_in: bool,
    linked: bool,
    bytes: u64,
    /// `ok`, `missing` or the reason the file cannot be read.
    status: String,
    architecture: Option<String>,
    quantization: Option<String>,
    context_length: Option<u64>,
    chat_template: Option<bool>,
}

impl Listing {
    fn of(model: EmbeddedModel) -> Listing {
        let mut listing = Listing {
            kind: model.kind.as_str(),
            bytes: models::size_on_disk(&model.path),
            status: if model.path.exists() { "ok" } else { "missing" }.to_owned(),
            id: model.id,
            built_in: model.built_in,
            linked: model.linked,
            architecture: None,
            quantization: None,
            context_length: None,
            chat_template: None,
            path: model.path,
        };
        if model.kind == Kind::Chat && listing.status == "ok" {
            match inference::GgufSummary::read(&listing.path) {
                Ok(summary) => {
                    listing.architecture = Some(summary.architecture);
                    listing.quantization = Some(summary.quantization);
                    listing.context_length = summary.context_length;
                    listing.chat_template = Some(summary.has_chat_template);
                }
                Err(error) => listing.status = error.to_string(),
            }
        }
        listing
    }
}

pub fn run(args: ModelsArgs) -> anyhow::Result<()> {
    let models_dir = args.models_dir.unwrap_or_else(|| {
        args.data_dir
            .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_DATA_DIR))
            .join("models")
    });
    match args.command {
        ModelsCommand::List { json } => {
            let listings: Vec<Listing> = models::embedded_models(&models_dir)?
                .into_iter()
                .map(Listing::of)
                .collect();
            if json {
                outln!("{}", serde_json::to_string_pretty(&listings)?);
            } else {
                print_table(&listings);
            }
        }
        ModelsCommand::Add { path, id, link } => {
            let added = models::add(
                &models_dir,
                NewModel {
                    source: &path,
                    id,
                    link,
                },
            )?;
            outln!(
                "added {} model {} ({}); `flywheel up` serves it from its next start",
                added.kind.as_str(),
                added.id,
                added.path.display()
            );
        }
        ModelsCommand::Remove { id } => {
            let removed = models::remove(&models_dir, &id)?;
            let what = if removed.linked {
                "unregistered; its file stays"
            } else {
                "removed with its copy"
            };
            outln!("{} {what} ({})", removed.id, removed.path.display());
        }
    }
    Ok(())
}

fn print_table(listings: &[Listing]) {
    let rows: Vec<[String; 7]> = listings
        .iter()
        .map(|listing| {
            [
                listing.id.clone(),
                listing.kind.to_owned(),
                listing.architecture.clone().unwrap_or_else(|| "-".to_owned()),
                listing.quantization.clone().unwrap_or_else(|| "-".to_owned()),
                listing
                    .context_length
                    .map_or_else(|| "-".to_owned(), |length| length.to_string()),
                format!("{:.1} MB", listing.bytes as f64 / 1e6),
                if listing.built_in {
                    format!("{} (built in)", listing.status)
                } else {
                    listing.status.clone()
                },
            ]
        })
        .collect();
    let header = ["ID", "KIND", "ARCH", "QUANT", "CONTEXT", "SIZE", "STATUS"];
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].len())
                .chain([header[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        outln!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}
