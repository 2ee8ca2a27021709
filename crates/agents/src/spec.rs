//! Agent specs: what an agent is, declared in TOML. A spec names its model (any gateway model), instructions,
//! toolsets and the tools it may use, limits, and policy; `AgentSpec::parse` checks it whole and names the
//! field that is wrong.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Lower-case letters, digits, `-` and `_`: it names the agent in URLs and the ledger.
    pub name: String,
    /// What the agent is for.
    #[serde(default)]
    pub description: String,
    /// The gateway model it thinks with.
    pub model: String,
    /// Its system instructions.
    #[serde(default)]
    pub instructions: String,
    /// A file whose text is appended to the instructions (a policy document), relative to the spec's file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions_file: Option<String>,
    /// The toolsets it draws tools from (`retail`, `mcp:<server>`).
    #[serde(default)]
    pub toolsets: Vec<String>,
    /// Only these tools of its toolsets; empty means all of them.
    #[serde(default)]
    pub tools: Vec<String>,
    /// How far one run may go.
    #[serde(default)]
    pub limits: Limits,
    /// What needs approval, confirmation, or is refused.
    #[serde(default)]
    pub policy: Policy,
    /// Sampling temperature of its model calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// The evaluation file `flywheel agents test` runs, relative to the spec's file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<String>,
}

/// Bounds on one run (from a user's message to the agent's answer) and on a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Model calls per run.
    pub max_steps: u32,
    /// Tool calls per model step; more are refused as a batch.
    pub max_tool_calls_per_step: u32,
    /// Output tokens per model call.
    pub max_output_tokens: u32,
    /// Tokens (prompt and output) over the whole session.
    pub max_session_tokens: u64,
    /// Wall-clock seconds per run.
    pub max_seconds: u64,
    /// Tokens of context sent to the model; older turns are trimmed to fit. 0 means the model's own window.
    pub context_tokens: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_steps: 30,
            max_tool_calls_per_step: 8,
            max_output_tokens: 512,
            max_session_tokens: 2_000_000,
            max_seconds: 300,
            context_tokens: 0,
        }
    }
}

/// Which tool calls run at once, which wait, and which are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Tools that wait for a person's approval through the API (`writes` means every tool that changes state).
    pub approval: Vec<String>,
    /// Tools that run only when the user's latest message confirms (yes, confirm, go ahead...); otherwise the
    /// call is refused and the model told to ask first (`writes` as above).
    pub confirm: Vec<String>,
    /// Allowed values per tool and argument: a call with any other value is refused.
    pub arguments: BTreeMap<String, BTreeMap<String, Vec<Value>>>,
}

impl Policy {
    fn names(list: &[String], tool: &str, writes: bool) -> bool {
        list.iter().any(|name| name == tool || (writes && name == "writes"))
    }

    /// Whether `tool` waits for a person's approval.
    pub fn needs_approval(&self, tool: &str, writes: bool) -> bool {
        Policy::names(&self.approval, tool, writes)
    }

    /// Whether `tool` needs the user's confirmation in their latest message.
    pub fn needs_confirmation(&self, tool: &str, writes: bool) -> bool {
        Policy::names(&self.confirm, tool, writes)
    }

    /// Why a call's arguments are refused, if they are.
    pub fn refuses_arguments(&self, tool: &str, arguments: &Value) -> Option<String> {
        let allowed = self.arguments.get(tool)?;
        allowed.iter().find_map(|(argument, values)| {
            let given = arguments.get(argument).unwrap_or(&Value::Null);
            (!values.contains(given))
                .then(|| format!("{tool}: {argument} = {given} is not allowed by the agent's policy"))
        })
    }
}

/// Why a spec is refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit the spec.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Where and why.
        message: String,
    },
}

impl AgentSpec {
    /// Reads a spec file, with its instructions file appended.
    pub fn load(path: &Path) -> Result<AgentSpec, SpecError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut spec = AgentSpec::parse(&text).map_err(|message| SpecError::Invalid {
            path: shown.clone(),
            message,
        })?;
        if let Some(file) = &spec.instructions_file {
            let full = path.parent().unwrap_or(Path::new(".")).join(file);
            let extra = std::fs::read_to_string(&full).map_err(|source| SpecError::Read {
                path: full.display().to_string(),
                source,
            })?;
            if !spec.instructions.is_empty() {
                spec.instructions.push_str("\n\n");
            }
            spec.instructions.push_str(&extra);
        }
        Ok(spec)
    }

    /// Parses and checks a spec; the message names the field that is wrong.
    pub fn parse(text: &str) -> Result<AgentSpec, String> {
        let spec: AgentSpec = toml::from_str(text).map_err(|error| error.to_string().trim().to_owned())?;
        spec.check()?;
        Ok(spec)
    }

    /// Checks what the types cannot.
    pub fn check(&self) -> Result<(), String> {
        if !valid_name(&self.name) {
            return Err(format!(
                "name {:?}: use 1-64 lower-case letters, digits, '-' or '_', starting with a letter",
                self.name
            ));
        }
        if self.model.trim().is_empty() {
            return Err("model: name the gateway model the agent uses".to_owned());
        }
        let limits = &self.limits;
        for (field, value) in [
            ("limits.max_steps", u64::from(limits.max_steps)),
            (
                "limits.max_tool_calls_per_step",
                u64::from(limits.max_tool_calls_per_step),
            ),
            ("limits.max_output_tokens", u64::from(limits.max_output_tokens)),
            ("limits.max_session_tokens", limits.max_session_tokens),
            ("limits.max_seconds", limits.max_seconds),
        ] {
            if value == 0 {
                return Err(format!("{field} must be at least 1"));
            }
        }
        if let Some(temperature) = self.temperature
            && !(0.0..=2.0).contains(&temperature)
        {
            return Err(format!("temperature {temperature} must be between 0 and 2"));
        }
        Ok(())
    }

    /// The TOML of a new agent called `name`, for `flywheel agents new`.
    pub fn scaffold(name: &str, model: &str) -> String {
        format!(
            "# An agent: its model, instructions, tools, limits and policy.\n\
             name = \"{name}\"\n\
             description = \"What {name} does.\"\n\
             model = \"{model}\"\n\
             instructions = \"\"\"\n\
             You are {name}. Answer briefly. Use the tools to look things up; never invent facts.\n\
             \"\"\"\n\
             # Toolsets: \"retail\" (the store's service tools), \"flywheel\" (catalog search).\n\
             toolsets = [\"retail\"]\n\
             # Only these tools of the toolsets (empty: all).\n\
             tools = []\n\
             # Cases for `flywheel agents test {name}`.\n\
             tests = \"{name}.tests.json\"\n\
             \n\
             [limits]\n\
             max_steps = 20\n\
             max_seconds = 120\n\
             \n\
             [policy]\n\
             # Tools that run only after the user's latest message confirms; \"writes\" is every tool that changes state.\n\
             confirm = [\"writes\"]\n\
             # Tools that wait for a person's approval through the API.\n\
             approval = []\n"
        )
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_scaffold_is_a_valid_spec() {
        let spec = AgentSpec::parse(&AgentSpec::scaffold("helper", "smollm2-135m")).unwrap();
        assert_eq!(spec.name, "helper");
        assert!(spec.policy.needs_confirmation("cancel_pending_order", true));
        assert!(!spec.policy.needs_confirmation("get_order_details", false));
        assert!(!spec.policy.needs_approval("cancel_pending_order", true));
    }

    #[test]
    fn errors_name_the_field() {
        let error = AgentSpec::parse("name = \"Bad Name\"\nmodel = \"m\"").unwrap_err();
        assert!(error.contains("name \"Bad Name\""), "{error}");
        let error = AgentSpec::parse("name = \"a\"\nmodel = \"m\"\n[limits]\nmax_steps = 0").unwrap_err();
        assert!(error.contains("limits.max_steps"), "{error}");
        let error = AgentSpec::parse("name = \"a\"\nmodel = \"m\"\nsteps = 3").unwrap_err();
        assert!(error.contains("unknown field"), "{error}");
    }

    #[test]
    fn argument_rules_refuse_other_values() {
        let spec = AgentSpec::parse(
            "name = \"a\"\nmodel = \"m\"\n[policy.arguments.cancel_pending_order]\nreason = [\"no longer needed\"]",
        )
        .unwrap();
        let policy = &spec.policy;
        assert!(
            policy
                .refuses_arguments(
                    "cancel_pending_order",
                    &serde_json::json!({"reason": "no longer needed"})
                )
                .is_none()
        );
        let refusal = policy
            .refuses_arguments("cancel_pending_order", &serde_json::json!({"reason": "bored"}))
            .unwrap();
        assert!(refusal.contains("reason"), "{refusal}");
    }
}
