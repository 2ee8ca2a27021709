//! How the runtime reaches a model: through the gateway, as the agent's own tenant (`agent-<name>`), so every
//! call is limited, budgeted and in the ledger like any other. Evaluations put a scripted model behind the
//! same trait.

use futures::future::BoxFuture;
use gateway::Gateway;
use gateway::openai::{ChatCompletion, ChatCompletionRequest};

/// A model the runtime can call.
pub trait ModelClient: Send + Sync {
    /// One chat completion for `agent`.
    fn chat(&self, agent: &str, request: ChatCompletionRequest) -> BoxFuture<'_, Result<ChatCompletion, String>>;
    /// The model's context window in tokens, when known.
    fn context_window(&self, model: &str) -> Option<u32>;
}

/// The gateway's models.
#[derive(Clone)]
pub struct GatewayModels {
    gateway: Gateway,
}

impl GatewayModels {
    /// Calls models through `gateway`.
    pub fn new(gateway: Gateway) -> GatewayModels {
        GatewayModels { gateway }
    }

    /// The tenant an agent's model calls are accounted to.
    pub fn tenant(agent: &str) -> String {
        format!("agent-{agent}")
    }
}

impl ModelClient for GatewayModels {
    fn chat(&self, agent: &str, request: ChatCompletionRequest) -> BoxFuture<'_, Result<ChatCompletion, String>> {
        let client = self
            .gateway
            .client(&GatewayModels::tenant(agent))
            .for_feature(&format!("agent:{agent}"));
        Box::pin(async move { client.chat(request).await.map_err(|error| error.to_string()) })
    }

    fn context_window(&self, model: &str) -> Option<u32> {
        self.gateway
            .models()
            .into_iter()
            .find(|info| info.id == model || info.aliases.iter().any(|alias| alias == model))
            .and_then(|info| info.context_length)
    }
}
