//! Tools: what an agent can do besides talk. Every tool, built in or reached over MCP, is a [`Tool`]: a name, a
//! description, a JSON Schema of its arguments, whether it changes anything, and an async call.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use gateway::openai::{FunctionDefinition, ToolDefinition};
use serde::Serialize;
use serde_json::Value;

/// Whether calling a tool changes the world: policy asks for confirmation or approval before writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolEffect {
    /// Only reads.
    Read,
    /// Changes state (orders, payments, addresses).
    Write,
    /// Neither reads nor writes the store (arithmetic, handing over to a person).
    Generic,
}

/// What a tool is, as a model and an MCP client see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSpec {
    /// Unique within an agent's tools.
    pub name: String,
    /// What it does and when to use it.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
    /// Whether it changes anything.
    pub effect: ToolEffect,
}

impl ToolSpec {
    /// The tool as an OpenAI function definition.
    pub fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            kind: "function".to_owned(),
            function: FunctionDefinition {
                name: self.name.clone(),
                description: Some(self.description.clone()),
                parameters: Some(self.parameters.clone()),
                strict: None,
            },
        }
    }
}

/// Why a tool call produced no result. Both kinds go back to the model as the call's result, so it can correct
/// itself; neither stops the agent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolError {
    /// The arguments do not fit the tool's schema.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The tool ran and refused (an order not found, a gift card short of balance).
    #[error("{0}")]
    Failed(String),
}

/// A tool an agent can call.
pub trait Tool: Send + Sync {
    /// What the tool is.
    fn spec(&self) -> &ToolSpec;
    /// Runs the tool with the model's arguments.
    fn call(&self, arguments: Value) -> BoxFuture<'_, Result<Value, ToolError>>;
    /// Sees a call that succeeded before a restart, so a tool that keeps conversation state (who the customer
    /// is) rebuilds it from the session's journal instead of redoing the call.
    fn observe(&self, _arguments: &Value, _result: &Value) {}
}

/// The tools an agent may use, by name.
#[derive(Clone, Default)]
pub struct Toolbox {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

impl Toolbox {
    /// An empty toolbox.
    pub fn new() -> Toolbox {
        Toolbox::default()
    }

    /// Adds a tool; one with the same name is replaced.
    pub fn insert(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.spec().name.clone(), tool);
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    /// Every tool, by name.
    pub fn specs(&self) -> impl Iterator<Item = &ToolSpec> {
        self.tools.values().map(|tool| tool.spec())
    }

    /// Only the tools `keep` names; names that are not here are returned as the error.
    pub fn only(&self, keep: &[String]) -> Result<Toolbox, Vec<String>> {
        let missing: Vec<String> = keep
            .iter()
            .filter(|name| !self.tools.contains_key(*name))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        Ok(Toolbox {
            tools: self
                .tools
                .iter()
                .filter(|(name, _)| keep.contains(name))
                .map(|(name, tool)| (name.clone(), tool.clone()))
                .collect(),
        })
    }
}
