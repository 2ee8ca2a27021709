//! The retail customer-service domain: the store's database, its fifteen service tools, the toolset that gives
//! each conversation its own authenticated customer, and the service agent's spec.

mod arithmetic;
pub mod db;
mod tools;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use db::{Cents, RetailDb, RetailDbError};
pub use tools::{RetailSession, SharedRetailDb};

use crate::runtime::Toolset;
use crate::spec::{AgentSpec, Limits, Policy};
use crate::tool::{Tool, Toolbox};

/// The name agents use for this toolset.
pub const TOOLSET: &str = "retail";

/// The demo store (`data/tau-retail/db.json`), which a server starts from when it has no store of its own.
pub const DEMO_STORE: &str = include_str!("../../../../data/tau-retail/db.json");
/// The store's service policy.
pub const POLICY: &str = include_str!("../../../../data/tau-retail/policy.md");
/// The tasks the service agent is evaluated on.
pub const TRAIN_TASKS: &str = include_str!("../../../../data/tau-retail/tasks_train.json");

/// The store saved in `file`, or the demo store written there first when there is none.
pub fn open_or_seed(file: &Path) -> Result<RetailDb, RetailDbError> {
    if file.exists() {
        return RetailDb::load(file);
    }
    let db: RetailDb = serde_json::from_str(DEMO_STORE).map_err(|source| RetailDbError::Parse {
        path: "the built-in demo store".to_owned(),
        source,
    })?;
    save(&db, file).map_err(|source| RetailDbError::Read {
        path: file.display().to_string(),
        source,
    })?;
    Ok(db)
}

/// Writes the store to `file` whole, through a temporary file renamed over it, so a crash leaves the old
/// store or the new one, never half of either.
pub fn save(db: &RetailDb, file: &Path) -> std::io::Result<()> {
    let text = serde_json::to_vec(db).map_err(std::io::Error::other)?;
    let temporary = file.with_extension("json.partial");
    {
        use std::io::Write as _;
        let mut out = std::fs::File::create(&temporary)?;
        out.write_all(&text)?;
        out.sync_all()?;
    }
    std::fs::rename(&temporary, file)
}

/// Conversations whose authenticated customer is remembered at once; beyond this the least recently used is
/// forgotten, and its customer must authenticate again (the safe direction to fail).
const MAX_SESSIONS: usize = 10_000;

/// The store's tools, one authenticated customer per session.
pub struct RetailToolset {
    db: SharedRetailDb,
    file: Option<Arc<Path>>,
    /// Each session's state and when it was last used.
    sessions: Mutex<HashMap<String, (Arc<RetailSession>, std::time::Instant)>>,
}

impl RetailToolset {
    /// Tools over `db`, kept in memory.
    pub fn new(db: SharedRetailDb) -> RetailToolset {
        RetailToolset {
            db,
            file: None,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Tools over `db`, saved to `file` after every change.
    pub fn saved_to(db: SharedRetailDb, file: &Path) -> RetailToolset {
        RetailToolset {
            file: Some(Arc::from(file)),
            ..RetailToolset::new(db)
        }
    }

    /// The conversation state of `session_id`.
    pub fn session(&self, session_id: &str) -> Arc<RetailSession> {
        let mut sessions = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if let Some((session, used)) = sessions.get_mut(session_id) {
            *used = now;
            return Arc::clone(session);
        }
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        let session = RetailSession::new(self.db.clone(), self.file.clone());
        sessions.insert(session_id.to_owned(), (Arc::clone(&session), now));
        session
    }
}

impl Toolset for RetailToolset {
    fn tools(&self, session_id: &str) -> Vec<Arc<dyn Tool>> {
        tools::tools(&self.session(session_id))
    }
}

/// The store's tools for a session that is already `customer`'s: replaying a task's gold actions, which
/// assume the customer was authenticated.
pub fn toolbox_for(db: SharedRetailDb, customer: &str) -> Toolbox {
    let session = RetailSession::new(db, None);
    session.assume(customer);
    let mut toolbox = Toolbox::new();
    for tool in tools::tools(&session) {
        toolbox.insert(tool);
    }
    toolbox
}

/// The instructions the service agent starts from; the store's policy follows them.
const PREAMBLE: &str = "You are the store's customer-service agent. Follow the policy below exactly. Use the \
tools to look things up and to make changes; never invent an id, a price or an option. Make one tool call at a \
time. Before any change, list what will be done and ask the customer to confirm with yes.";

/// The service agent on `model`, with the store's `policy` text.
pub fn service_agent(model: &str, policy: &str) -> AgentSpec {
    AgentSpec {
        name: "retail-service".to_owned(),
        description: "Answers the store's customers: orders, cancellations, changes, returns and exchanges.".to_owned(),
        model: model.to_owned(),
        instructions: format!("{PREAMBLE}\n\n{policy}"),
        instructions_file: None,
        toolsets: vec![TOOLSET.to_owned()],
        tools: Vec::new(),
        limits: Limits {
            max_steps: 30,
            ..Limits::default()
        },
        policy: Policy {
            confirm: vec!["writes".to_owned()],
            ..Policy::default()
        },
        temperature: Some(0.0),
        tests: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_session_keeps_its_customer_and_the_least_recently_used_is_forgotten_beyond_the_limit() {
        let db: RetailDb = serde_json::from_str(DEMO_STORE).unwrap();
        let toolset = RetailToolset::new(Arc::new(Mutex::new(db)));
        toolset.session("first").assume("someone");
        for index in 0..MAX_SESSIONS - 1 {
            toolset.session(&format!("other-{index}"));
        }
        // Using the first session again makes another the least recently used.
        assert_eq!(toolset.session("first").customer().as_deref(), Some("someone"));
        toolset.session("one-more");
        assert_eq!(toolset.session("first").customer().as_deref(), Some("someone"));
        let sessions = toolset.sessions.lock().unwrap();
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(!sessions.contains_key("other-0"));
    }
}
