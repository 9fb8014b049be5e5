//! In-memory ports for unit tests: they behave like the adapters (conditional writes, spent
//! tokens) so service logic can be tested without AWS.

use crate::callback::{CallbackError, TaskCallback};
use crate::tasks::{Change, Created, Note, StoreError, TaskRecord, TaskStore, Transitioned};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use taskflow_contracts::{TaskStatus, TaskToken};

#[derive(Default)]
pub struct InMemoryTaskStore {
    tasks: Mutex<HashMap<String, TaskRecord>>,
}

impl InMemoryTaskStore {
    pub fn with(tasks: impl IntoIterator<Item = TaskRecord>) -> Self {
        let store = Self::default();
        store.tasks.lock().unwrap().extend(tasks.into_iter().map(|t| (t.order_id.clone(), t)));
        store
    }
    pub fn snapshot(&self, order_id: &str) -> Option<TaskRecord> {
        self.tasks.lock().unwrap().get(order_id).cloned()
    }
    pub fn len(&self) -> usize {
        self.tasks.lock().unwrap().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl TaskStore for InMemoryTaskStore {
    async fn get(&self, order_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        Ok(self.snapshot(order_id))
    }

    async fn create(&self, task: &TaskRecord) -> Result<Created, StoreError> {
        let mut tasks = self.tasks.lock().unwrap();
        if let Some(existing) = tasks.get(&task.order_id) {
            return Ok(Created::Exists(Box::new(existing.clone())));
        }
        tasks.insert(task.order_id.clone(), task.clone());
        Ok(Created::Created)
    }

    async fn transition(&self, order_id: &str, from: &[TaskStatus], change: &Change) -> Result<Transitioned, StoreError> {
        let mut tasks = self.tasks.lock().unwrap();
        let Some(task) = tasks.get_mut(order_id) else { return Ok(Transitioned::Missing) };
        if !from.contains(&task.status) {
            return Ok(Transitioned::Conflict(Box::new(task.clone())));
        }
        change.apply(task);
        Ok(Transitioned::Applied(Box::new(task.clone())))
    }

    async fn note(&self, order_id: &str, note: &Note) -> Result<(), StoreError> {
        let mut tasks = self.tasks.lock().unwrap();
        let task = tasks.get_mut(order_id).ok_or_else(|| StoreError::Unavailable("no such task".into()))?;
        match note {
            Note::Execution(arn) => task.execution_arn = Some(arn.clone()),
            Note::Notice(key) => task.notice_key = Some(key.clone()),
        }
        Ok(())
    }
}

/// What a worker answered a token with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Success(String),
    Failure { error: String, cause: String },
    Heartbeat,
}

/// Records answers; a token answered once is spent, like in Step Functions.
#[derive(Default)]
pub struct RecordingCallback {
    answers: Mutex<Vec<(String, Answer)>>,
    /// When set, every call fails as if Step Functions were unreachable.
    pub unavailable: std::sync::atomic::AtomicBool,
}

impl RecordingCallback {
    pub fn answers(&self) -> Vec<(String, Answer)> {
        self.answers.lock().unwrap().clone()
    }

    fn answer(&self, token: &TaskToken, answer: Answer) -> Result<(), CallbackError> {
        if self.unavailable.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(CallbackError::Unavailable("injected".into()));
        }
        let mut answers = self.answers.lock().unwrap();
        let spent = answers
            .iter()
            .any(|(t, a)| t == token.expose() && !matches!(a, Answer::Heartbeat));
        if spent {
            return Err(CallbackError::TokenSpent("TaskTimedOut".into()));
        }
        answers.push((token.expose().to_string(), answer));
        Ok(())
    }
}

#[async_trait]
impl TaskCallback for RecordingCallback {
    async fn succeed(&self, token: &TaskToken, output: String) -> Result<(), CallbackError> {
        self.answer(token, Answer::Success(output))
    }
    async fn fail(&self, token: &TaskToken, error: &str, cause: &str) -> Result<(), CallbackError> {
        self.answer(token, Answer::Failure { error: error.into(), cause: cause.into() })
    }
    async fn heartbeat(&self, token: &TaskToken) -> Result<(), CallbackError> {
        self.answer(token, Answer::Heartbeat)
    }
}
