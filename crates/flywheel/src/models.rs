//! The embedded models: the two built in (fetched by `scripts/fetch-models`) and those added with
//! `flywheel models add`, registered in `<models-dir>/models.toml`. `flywheel up` serves them all, and
//! `flywheel models list|add|remove` manages them, with the server up or down (a running server sees a change
//! at its next start).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The built-in chat model's id and file.
pub const CHAT_MODEL_ID: &str = "smollm2-135m-instruct";
pub const CHAT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The built-in sentence embedder's id and directory.
pub const EMBEDDING_MODEL_ID: &str = "all-minilm-l6-v2";
pub const EMBEDDING_MODEL_DIR: &str = "all-MiniLM-L6-v2";

/// The registry of added models, inside the models directory.
const REGISTRY_FILE: &str = "models.toml";

/// GGUF architectures that embed rather than chat: the embedded engine serves embedders from their
/// sentence-transformers directories instead.
const EMBEDDING_ARCHITECTURES: [&str; 4] = ["bert", "nomic-bert", "jina-bert-v2", "t5encoder"];

/// Files a sentence-transformers directory must hold.
const EMBEDDER_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// What a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A GGUF chat model, run by llama.cpp.
    Chat,
    /// A BERT sentence embedder, in a sentence-transformers directory.
    Embedding,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::Embedding => "embedding",
        }
    }
}

/// One embedded model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedModel {
    pub id: String,
    pub kind: Kind,
    /// Where its file (chat) or directory (embedding) is.
    pub path: PathBuf,
    /// Built in: fetched by `scripts/fetch-models`, never removed.
    pub built_in: bool,
    /// Registered where it was rather than copied into the models directory: removing it leaves the file.
    pub linked: bool,
}

/// A registry entry as `models.toml` holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    kind: Kind,
    /// Relative to the models directory when copied there; absolute when linked.
    path: PathBuf,
    #[serde(default)]
    linked: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    models: Vec<Entry>,
}

/// Why a models command failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is not a valid model registry: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    NotAModel(String),
    #[error("a model with id {0:?} exists already; pick another with --id")]
    DuplicateId(String),
    #[error(
        "invalid model id {0:?}: use 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit"
    )]
    InvalidId(String),
    #[error("no added model has id {0:?}; `flywheel models list` shows them")]
    UnknownId(String),
    #[error("{0:?} is built in and cannot be removed (scripts/fetch-models restores the built-in models)")]
    BuiltIn(String),
}

/// Every embedded model of `models_dir`: the built-in ones first, then those added, in the order they were.
pub fn embedded_models(models_dir: &Path) -> Result<Vec<EmbeddedModel>, ModelsError> {
    let mut models = vec![
        EmbeddedModel {
            id: CHAT_MODEL_ID.to_owned(),
            kind: Kind::Chat,
            path: models_dir.join(CHAT_MODEL_FILE),
            built_in: true,
            linked: false,
        },
        EmbeddedModel {
            id: EMBEDDING_MODEL_ID.to_owned(),
            kind: Kind::Embedding,
            path: models_dir.join(EMBEDDING_MODEL_DIR),
            built_in: true,
            linked: false,
        },
    ];
    models.extend(
        read_registry(models_dir)?
            .models
            .into_iter()
            .map(|entry| EmbeddedModel {
                path: models_dir.join(&entry.path),
                id: entry.id,
                kind: entry.kind,
                built_in: false,
                linked: entry.linked,
            }),
    );
    Ok(models)
}

/// What `add` is asked to do.
pub struct NewModel<'a> {
    pub source: &'a Path,
    pub id: Option<String>,
    /// Register the file where it is instead of copying it into the models directory.
    pub link: bool,
}

/// Checks that `new.source` is a model the engine can serve (a GGUF chat model, or a sentence-transformers
/// directory), copies it into the models directory unless linked, and registers it.
pub fn add(models_dir: &Path, new: NewModel<'_>) -> Result<EmbeddedModel, ModelsError> {
    let source = new.source;
    let not_a_model = |reason: String| ModelsError::NotAModel(format!("{}: {reason}", source.display()));
    let kind = if source.is_dir() {
        if let Some(missing) = EMBEDDER_FILES.iter().find(|file| !source.join(file).is_file()) {
            return Err(not_a_model(format!(
                "a model directory must be a sentence-transformers embedder with {}; {missing} is missing",
                EMBEDDER_FILES.join(", ")
            )));
        }
        Kind::Embedding
    } else {
        let summary = inference::GgufSummary::read(source).map_err(|error| match error {
            inference::InferenceError::ModelMissing { .. } => not_a_model("no such file or directory".to_owned()),
            inference::InferenceError::ModelCorrupt { reason, .. } => {
                not_a_model(format!("not a usable GGUF model: {reason}"))
            }
            other => not_a_model(other.to_string()),
        })?;
        if EMBEDDING_ARCHITECTURES.contains(&summary.architecture.as_str()) {
            return Err(not_a_model(format!(
                "a {} GGUF is an embedder; add its sentence-transformers directory instead",
                summary.architecture
            )));
        }
        Kind::Chat
    };
    let id = match new.id {
        Some(id) => id,
        None => default_id(source),
    };
    if !valid_id(&id) {
        return Err(ModelsError::InvalidId(id));
    }
    let mut registry = read_registry(models_dir)?;
    if is_built_in(&id) || registry.models.iter().any(|entry| entry.id == id) {
        return Err(ModelsError::DuplicateId(id));
    }
    let absolute = std::path::absolute(source).map_err(|source_error| ModelsError::Read {
        path: source.to_path_buf(),
        source: source_error,
    })?;
    let path = if new.link {
        absolute.clone()
    } else {
        // Named after the id, which is unique, so a copy never collides with another model's file.
        let name = match kind {
            Kind::Chat => format!("{id}.gguf"),
            Kind::Embedding => id.clone(),
        };
        let target = models_dir.join(&name);
        if target.exists() {
            return Err(not_a_model(format!(
                "{} exists already in the models directory; pick another --id",
                target.display()
            )));
        }
        copy_into_place(&absolute, &target)?;
        PathBuf::from(name)
    };
    registry.models.push(Entry {
        id: id.clone(),
        kind,
        path: path.clone(),
        linked: new.link,
    });
    write_registry(models_dir, &registry)?;
    Ok(EmbeddedModel {
        id,
        kind,
        path: models_dir.join(path),
        built_in: false,
        linked: new.link,
    })
}

/// Unregisters an added model and deletes its copy (a linked model's file stays where it is).
pub fn remove(models_dir: &Path, id: &str) -> Result<EmbeddedModel, ModelsError> {
    if is_built_in(id) {
        return Err(ModelsError::BuiltIn(id.to_owned()));
    }
    let mut registry = read_registry(models_dir)?;
    let index = registry
        .models
        .iter()
        .position(|entry| entry.id == id)
        .ok_or_else(|| ModelsError::UnknownId(id.to_owned()))?;
    let entry = registry.models.remove(index);
    // Unregister first: a failed delete leaves a stray file, never an entry pointing at nothing.
    write_registry(models_dir, &registry)?;
    let path = models_dir.join(&entry.path);
    if !entry.linked {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ModelsError::Write { path, source }),
        }
    }
    Ok(EmbeddedModel {
        id: entry.id,
        kind: entry.kind,
        path,
        built_in: false,
        linked: entry.linked,
    })
}

fn is_built_in(id: &str) -> bool {
    id == CHAT_MODEL_ID || id == EMBEDDING_MODEL_ID
}

/// The file name without its extension, lower-cased, with anything but letters, digits, '.', '_' and '-'
/// turned into '-'.
fn default_id(source: &Path) -> String {
    let stem = if source.is_dir() {
        source.file_name()
    } else {
        source.file_stem()
    };
    let id: String = stem
        .map(|stem| stem.to_string_lossy().to_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    id.trim_start_matches(['.', '_', '-']).to_owned()
}

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    id.len() <= 64
        && chars
            .next()
            .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

fn read_registry(models_dir: &Path) -> Result<RegistryFile, ModelsError> {
    let path = models_dir.join(REGISTRY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(RegistryFile::default()),
        Err(source) => return Err(ModelsError::Read { path, source }),
    };
    toml::from_str(&text).map_err(|error| ModelsError::Parse {
        path,
        message: error.message().to_owned(),
    })
}

/// Writes the registry whole under a temporary name, then renames it over the old one, so a crash leaves
/// either registry, never half of one.
fn write_registry(models_dir: &Path, registry: &RegistryFile) -> Result<(), ModelsError> {
    let path = models_dir.join(REGISTRY_FILE);
    let write_error = |source| ModelsError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(models_dir).map_err(write_error)?;
    let text = toml::to_string(registry).map_err(|error| ModelsError::Write {
        path: path.clone(),
        source: std::io::Error::other(error.to_string()),
    })?;
    let partial = models_dir.join(format!("{REGISTRY_FILE}.partial"));
    std::fs::write(&partial, text).map_err(write_error)?;
    std::fs::rename(&partial, &path).map_err(write_error)
}

/// Copies a file or a directory under a temporary name, then renames it into place, so an interrupted copy
/// never leaves something that looks complete.
fn copy_into_place(source: &Path, target: &Path) -> Result<(), ModelsError> {
    let mut partial = target.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let write_error = |source| ModelsError::Write {
        path: target.to_path_buf(),
        source,
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(write_error)?;
    }
    if source.is_dir() {
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial).map_err(write_error)?;
        copy_dir(source, &partial).map_err(write_error)?;
    } else {
        std::fs::copy(source, &partial).map_err(write_error)?;
    }
    std::fs::rename(&partial, target).map_err(write_error)
}

fn copy_dir(source: &Path, target: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(source)? {
        let entry = entry?;
        let destination = target.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&destination)?;
            copy_dir(&entry.path(), &destination)?;
        } else {
            std::fs::copy(entry.path(), destination)?;
        }
    }
    Ok(())
}

/// Bytes a model takes on disk: its file, or every file of its directory.
pub fn size_on_disk(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| size_on_disk(&entry.path()))
                .sum()
        })
    } else {
        std::fs::metadata(path).map_or(0, |metadata| metadata.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ids_default_to_the_cleaned_file_stem() {
        assert_eq!(
            default_id(Path::new("/x/Gemma-3 270M.Q4_K_M.gguf")),
            "gemma-3-270m.q4_k_m"
        );
        assert!(valid_id("gemma-3-270m.q4_k_m"));
        assert!(!valid_id("Gemma"));
        assert!(!valid_id("-leading"));
        assert!(!valid_id(""));
        assert!(!valid_id(&"a".repeat(65)));
    }

    #[test]
    fn an_embedder_directory_is_registered_copied_and_removed() {
        let models = tempfile::tempdir().unwrap();
        let source = tempfile::tempdir().unwrap();
        let embedder = source.path().join("my-embedder");
        std::fs::create_dir_all(&embedder).unwrap();
        for file in EMBEDDER_FILES {
            std::fs::write(embedder.join(file), b"{}").unwrap();
        }
        let added = add(
            models.path(),
            NewModel {
                source: &embedder,
                id: None,
                link: false,
            },
        )
        .unwrap();
        assert_eq!((added.id.as_str(), added.kind), ("my-embedder", Kind::Embedding));
        assert!(
            models.path().join("my-embedder/model.safetensors").is_file(),
            "copied under its id"
        );
        let listed = embedded_models(models.path()).unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[2], added);

        let again = add(
            models.path(),
            NewModel {
                source: &embedder,
                id: None,
                link: true,
            },
        );
        assert!(matches!(again, Err(ModelsError::DuplicateId(_))));
        assert!(matches!(
            remove(models.path(), CHAT_MODEL_ID),
            Err(ModelsError::BuiltIn(_))
        ));
        remove(models.path(), "my-embedder").unwrap();
        assert!(!models.path().join("my-embedder").exists());
        assert!(embedder.join("model.safetensors").is_file(), "the source is untouched");
        assert!(matches!(
            remove(models.path(), "my-embedder"),
            Err(ModelsError::UnknownId(_))
        ));
        assert_eq!(embedded_models(models.path()).unwrap().len(), 2);
    }

    #[test]
    fn a_directory_without_the_embedder_files_is_refused_by_name() {
        let models = tempfile::tempdir().unwrap();
        let source = tempfile::tempdir().unwrap();
        let error = add(
            models.path(),
            NewModel {
                source: source.path(),
                id: Some("x".to_owned()),
                link: true,
            },
        )
        .unwrap_err();
        assert!(error.to_string().contains("config.json is missing"), "{error}");
    }

    #[test]
    fn a_broken_registry_is_reported_with_its_path() {
        let models = tempfile::tempdir().unwrap();
        std::fs::write(models.path().join(REGISTRY_FILE), "models = 3").unwrap();
        let error = embedded_models(models.path()).unwrap_err();
        assert!(error.to_string().contains("models.toml"), "{error}");
    }
}
