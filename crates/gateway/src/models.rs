//! The model catalog: which models this gateway serves, what kind each is, and whether it is loading, ready or
//! failed. Models are declared before they load so that clients get "loading" (503) rather than "unknown" (404)
//! during start-up.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::GatewayError;
use crate::provider::{ChatProvider, EmbeddingProvider};

/// What a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Chat completions.
    Chat,
    /// Embeddings.
    Embedding,
}

/// Where a model is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum ModelStatus {
    /// Declared, not loaded yet.
    Loading,
    /// Serving.
    Ready,
    /// Loading failed; the reason is shown to clients.
    Failed(String),
}

/// A model as listed by [`crate::Gateway::models`].
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// The id clients use.
    pub id: String,
    /// What the model does.
    pub kind: ModelKind,
    /// Loading, ready or failed.
    pub status: ModelStatus,
}

#[derive(Clone)]
pub(crate) enum Backend {
    Chat(Arc<dyn ChatProvider>),
    Embedding(Arc<dyn EmbeddingProvider>),
}

enum Slot {
    Loading,
    Ready(Backend),
    Failed(String),
}

struct Entry {
    kind: ModelKind,
    slot: Slot,
}

#[derive(Default)]
pub(crate) struct ModelCatalog {
    entries: RwLock<BTreeMap<String, Entry>>,
}

impl ModelCatalog {
    pub(crate) fn declare(&self, id: &str, kind: ModelKind) {
        self.write(|entries| {
            entries.insert(
                id.to_owned(),
                Entry {
                    kind,
                    slot: Slot::Loading,
                },
            );
        });
    }

    pub(crate) fn attach(&self, id: &str, backend: Backend) {
        let kind = match backend {
            Backend::Chat(_) => ModelKind::Chat,
            Backend::Embedding(_) => ModelKind::Embedding,
        };
        self.write(|entries| {
            entries.insert(
                id.to_owned(),
                Entry {
                    kind,
                    slot: Slot::Ready(backend),
                },
            );
        });
    }

    pub(crate) fn fail(&self, id: &str, reason: String) {
        self.write(|entries| {
            if let Some(entry) = entries.get_mut(id) {
                entry.slot = Slot::Failed(reason);
            }
        });
    }

    /// The backend serving `id`, or the error a client should see.
    pub(crate) fn backend(&self, id: &str) -> Result<Backend, GatewayError> {
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match entries.get(id).map(|entry| &entry.slot) {
            None => Err(GatewayError::ModelNotFound(id.to_owned())),
            Some(Slot::Loading) => Err(GatewayError::ModelLoading(id.to_owned())),
            Some(Slot::Failed(reason)) => Err(GatewayError::ModelUnavailable {
                model: id.to_owned(),
                reason: reason.clone(),
            }),
            Some(Slot::Ready(backend)) => Ok(backend.clone()),
        }
    }

    pub(crate) fn list(&self) -> Vec<ModelInfo> {
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .iter()
            .map(|(id, entry)| ModelInfo {
                id: id.clone(),
                kind: entry.kind,
                status: match &entry.slot {
                    Slot::Loading => ModelStatus::Loading,
                    Slot::Ready(_) => ModelStatus::Ready,
                    Slot::Failed(reason) => ModelStatus::Failed(reason.clone()),
                },
            })
            .collect()
    }

    fn write(&self, change: impl FnOnce(&mut BTreeMap<String, Entry>)) {
        // A panic while holding this lock cannot leave an entry half-written, so a poisoned lock is still sound.
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut entries);
    }
}
