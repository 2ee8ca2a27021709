//! OpenAI's Responses API, `POST /v1/responses`, in front of any chat model: the request is translated once
//! into the chat request the rest of the gateway speaks, served by [`crate::GatewayClient`] like any chat call
//! (same keys, limits, budgets, cache, guardrails and ledger, recorded under the endpoint `responses`), and the
//! answer translated back into the response object or its event stream.
//!
//! This module owns only translation and the HTTP handler; it must never decide routing, limits or accounting.
//!
//! What differs from OpenAI's own service, by design of a stateless gateway:
//! - responses are not stored (`store` is answered `false`): `previous_response_id`, `conversation` and stored
//!   `prompt`s are refused with a 400 naming the field; clients send the whole conversation in `input`;
//! - only `function` tools exist (hosted tools run on OpenAI's servers), and there are no reasoning items;
//! - ids are derived from the ledger's request id: `resp_<id>`, `msg_<id>`, `fc_<id>_<n>`.

pub(crate) mod http;
pub(crate) mod translate;
pub mod wire;

#[cfg(test)]
mod tests;
