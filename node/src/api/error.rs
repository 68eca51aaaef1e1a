//! The one error shape every HTTP client sees: `{"ok": false, "error", "message", "code"}` with a
//! 4xx status (503 while storage is unavailable).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::attestation::AttestError;
use serde_json::json;

use crate::store;

/// An HTTP error in the one shape every client sees.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub(crate) fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "STORAGE_UNAVAILABLE", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"ok": false, "error": self.message, "message": self.message, "code": self.code});
        (self.status, Json(body)).into_response()
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        if !matches!(e, store::StoreError::Closed) {
            tracing::error!(error = %e, "storage read failed");
        }
        ApiError::unavailable(format!("storage unavailable: {e}"))
    }
}

impl From<AttestError> for ApiError {
    fn from(e: AttestError) -> Self {
        let status = match e {
            AttestError::InvalidDevice(_)
            | AttestError::InvalidSignals(_)
            | AttestError::InvalidFingerprint(_)
            | AttestError::InvalidMetric(..)
            | AttestError::InvalidCores
            | AttestError::InvalidMacs => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AttestError::KeyMismatch { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}
