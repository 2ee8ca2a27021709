//! The fleet's one error type. Every variant names what a person must fix: the file, the line and the field
//! for bad input, the binding constraint for an infeasible plan.

use std::path::PathBuf;

/// Everything loading a fleet, a series, a trace or a demand file, routing, planning and exporting can fail with.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A file could not be read or written.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// A value in a file is wrong: its line (1-based, 0 when unknown), field and what is wrong with it.
    #[error("{}{}: {field}: {message}", path.display(), line_suffix(*line))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line, 1-based; 0 when the format does not say.
        line: usize,
        /// The field or column.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The demand cannot be met by any placement; `binding` says which constraint stops it.
    #[error("infeasible: {binding}")]
    Infeasible {
        /// The constraint that binds, in words, with the figures.
        binding: String,
    },
    /// A request to the router or planner names something the fleet does not have.
    #[error("{0}")]
    Unknown(String),
    /// The fleet cannot be written as Kubernetes objects: a value a cluster would refuse, and which one.
    #[error("kubernetes export: {0}")]
    Export(String),
}

fn line_suffix(line: usize) -> String {
    if line == 0 { String::new() } else { format!(":{line}") }
}

impl FleetError {
    pub(crate) fn invalid(path: &std::path::Path, line: usize, field: &str, message: impl Into<String>) -> Self {
        FleetError::Invalid {
            path: path.to_path_buf(),
            line,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, cause: std::io::Error) -> Self {
        FleetError::Io {
            path: path.to_path_buf(),
            cause,
        }
    }
}
