//! The commerce layer's one error type and the single place that turns each variant into an HTTP status and
//! our `/api/*` error body `{"error":{"code","message"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Everything a catalog load, a search or a product lookup can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CommerceError {
    /// The catalog could not be opened or read.
    #[error("cannot read {catalog}: {cause}")]
    CatalogRead {
        /// Which catalog: its path, or the built-in demo.
        catalog: String,
        /// The underlying I/O error.
        cause: std::io::Error,
    },
    /// The catalog as a whole is not in the expected format (rows with problems are rejected one by one
    /// instead, see [`crate::ImportReport`]).
    #[error("{catalog} is not a valid product file: {reason}")]
    CatalogFormat {
        /// Which catalog: its path, or the built-in demo.
        catalog: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A request has a missing or invalid parameter.
    #[error("{0}")]
    InvalidRequest(String),
    /// No campaign, impression or other record has that id.
    #[error("{0}")]
    NotFound(String),
    /// No product has that id.
    #[error("no product has the id '{0}'")]
    ProductNotFound(String),
    /// The catalog is still being parsed and indexed.
    #[error("the catalog is still loading; retry shortly")]
    CatalogLoading,
    /// The catalog failed to load; the storefront will not serve until it is loaded again.
    #[error("the catalog is unavailable: {0}")]
    CatalogUnavailable(String),
    /// The search index failed.
    #[error("the search index failed: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The model behind the product assistant refused or failed; its status and code are the gateway's.
    #[error("the product assistant could not answer: {0}")]
    Assistant(gateway::GatewayError),
    /// The embedding model refused or failed; its status and code are the gateway's.
    #[error("the embedding model could not embed: {0}")]
    Embedding(gateway::GatewayError),
    /// Dense search is not available: no embedder, or the product vectors are not built yet.
    #[error("vector search is unavailable: {0}")]
    VectorsUnavailable(String),
    /// This storefront runs without a product assistant.
    #[error("this store has no product assistant")]
    AssistantUnavailable,
    /// An upload is larger than accepted.
    #[error("{0}")]
    TooLarge(String),
    /// The catalog's database failed.
    #[error("the catalog database failed: {0}")]
    Database(String),
    /// The caller may not do this (admin routes); its status and code are the gateway's.
    #[error("{0}")]
    Auth(gateway::GatewayError),
}

/// A JSON body, or the reason axum could not take it as a 400 in our error shape.
pub(crate) fn json_body<T>(
    body: Result<axum::Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, CommerceError> {
    body.map(|axum::Json(body)| body)
        .map_err(|rejection| CommerceError::InvalidRequest(rejection.body_text()))
}

/// A malformed query string or path is the client's to fix.
impl From<axum::extract::rejection::QueryRejection> for CommerceError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        CommerceError::InvalidRequest(rejection.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for CommerceError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        CommerceError::InvalidRequest(rejection.body_text())
    }
}

impl From<store::StoreError> for CommerceError {
    fn from(error: store::StoreError) -> Self {
        CommerceError::Database(error.to_string())
    }
}

impl From<sqlx::Error> for CommerceError {
    fn from(error: sqlx::Error) -> Self {
        CommerceError::Database(error.to_string())
    }
}

impl CommerceError {
    /// The HTTP status this error is answered with, by the JSON API and the storefront pages alike.
    pub fn status(&self) -> StatusCode {
        match self {
            CommerceError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            CommerceError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            CommerceError::ProductNotFound(_) | CommerceError::NotFound(_) => StatusCode::NOT_FOUND,
            CommerceError::CatalogLoading
            | CommerceError::CatalogUnavailable(_)
            | CommerceError::AssistantUnavailable
            | CommerceError::VectorsUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            CommerceError::Assistant(error) | CommerceError::Embedding(error) | CommerceError::Auth(error) => {
                error.status()
            }
            // An uploaded file that is not a product file is the uploader's to fix.
            CommerceError::CatalogFormat { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            CommerceError::CatalogRead { .. } | CommerceError::Index(_) | CommerceError::Database(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The stable, machine-readable error code.
    pub fn code(&self) -> &'static str {
        match self {
            CommerceError::CatalogRead { .. } => "catalog_read_failed",
            CommerceError::CatalogFormat { .. } => "catalog_format_invalid",
            CommerceError::InvalidRequest(_) => "invalid_request",
            CommerceError::ProductNotFound(_) => "product_not_found",
            CommerceError::NotFound(_) => "not_found",
            CommerceError::CatalogLoading => "catalog_loading",
            CommerceError::CatalogUnavailable(_) => "catalog_unavailable",
            CommerceError::Index(_) => "search_index_failed",
            CommerceError::Assistant(error) | CommerceError::Embedding(error) | CommerceError::Auth(error) => {
                error.code()
            }
            CommerceError::Database(_) => "database_error",
            CommerceError::TooLarge(_) => "body_too_large",
            CommerceError::VectorsUnavailable(_) => "vectors_unavailable",
            CommerceError::AssistantUnavailable => "assistant_unavailable",
        }
    }
}

impl IntoResponse for CommerceError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = self.code(), error = %self, "commerce request failed");
        }
        let body = json!({ "error": { "code": self.code(), "message": self.to_string() } });
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn errors_render_as_code_and_message() {
        let response = CommerceError::ProductNotFound("42".to_owned()).into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({"error": {"code": "product_not_found", "message": "no product has the id '42'"}})
        );
    }

    #[test]
    fn loading_is_unavailable_not_a_server_fault() {
        assert_eq!(CommerceError::CatalogLoading.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            CommerceError::InvalidRequest("bad".to_owned()).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
