//! In-memory ports for unit tests: they behave like the adapters (conditional writes, spent
//! tokens) so service logic can be tested without AWS.

use crate::callback::{CallbackError, TaskCallback};
use crate::tasks::{AttachmentRecorded, Change, Created, Note, StoreError, TaskRecord, TaskStore, Transitioned};
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
        store.tasks.lock().unwrap().extend(tasks.into_iter().map(|t| (t.task_id.clone(), t)));
        store
    }
    /// The task keyed `task_id`.
    pub fn by_key(&self, task_id: &str) -> Option<TaskRecord> {
        self.tasks.lock().unwrap().get(task_id).cloned()
    }
    /// The task of `owner`'s order `order_id`.
    pub fn of(&self, owner: &str, order_id: &str) -> Option<TaskRecord> {
        self.by_key(&taskflow_contracts::keys::task_id(owner, order_id))
    }
    /// The one task with this order id, whoever owns it (panics if several owners used it).
    pub fn snapshot(&self, order_id: &str) -> Option<TaskRecord> {
        let tasks = self.tasks.lock().unwrap();
        let mut found = tasks.values().filter(|t| t.order_id == order_id);
        let one = found.next().cloned();
        assert!(found.next().is_none(), "several tasks have order id {order_id}: use `of(owner, order_id)`");
        one
    }
    /// Every task stored.
    pub fn all(&self) -> Vec<TaskRecord> {
        self.tasks.lock().unwrap().values().cloned().collect()
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
    async fn get(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        Ok(self.by_key(task_id))
    }

    async fn create(&self, task: &TaskRecord) -> Result<Created, StoreError> {
        let mut tasks = self.tasks.lock().unwrap();
        if let Some(existing) = tasks.get(&task.task_id) {
            return Ok(Created::Exists(Box::new(existing.clone())));
        }
        tasks.insert(task.task_id.clone(), task.clone());
        Ok(Created::Created)
    }

    async fn transition(&self, order_id: &str, from: &[TaskStatus], change: &Change) -> Result<Transitioned, StoreError> {
        let mut tasks = self.tasks.lock().unwrap();
        let Some(task) = tasks.get_mut(order_id) else { return Ok(Transitioned::Missing) };
        if !from.contains(&task.status) || task.history.len() >= taskflow_contracts::limits::MAX_HISTORY_ENTRIES {
            return Ok(Transitioned::Conflict(Box::new(task.clone())));
        }
        change.apply(task);
        Ok(Transitioned::Applied(Box::new(task.clone())))
    }

    async fn note(&self, order_id: &str, note: &Note) -> Result<(), StoreError> {
        let mut tasks = self.tasks.lock().unwrap();
        let task = tasks.get_mut(order_id).ok_or_else(|| StoreError::Unavailable("no such task".into()))?;
        match note {
            Note::Receipt(key) if !task.receipts.contains(key) => task.receipts.push(key.clone()),
            Note::Receipt(_) => {}
            Note::Approval(approval) if task.status == TaskStatus::AwaitingApproval && task.approval.is_none() => task.approval = Some(approval.clone()),
            Note::Approval(_) => {}
            Note::Attention(text) => task.attention = Some(text.clone()),
        }
        Ok(())
    }

    async fn list_by_owner(&self, owner: &str) -> Result<Vec<TaskRecord>, StoreError> {
        let mut tasks: Vec<TaskRecord> = self.tasks.lock().unwrap().values().filter(|t| t.owner == owner).cloned().collect();
        tasks.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(tasks)
    }

    async fn add_attachment(&self, task_id: &str, owner: &str, attachment: &taskflow_contracts::Attachment, max: usize) -> Result<AttachmentRecorded, StoreError> {
        let mut tasks = self.tasks.lock().unwrap();
        let Some(task) = tasks.get_mut(task_id).filter(|t| t.owner == owner) else { return Ok(AttachmentRecorded::Missing) };
        if task.attachments.iter().any(|a| a.id == attachment.id) {
            return Ok(AttachmentRecorded::AlreadyThere);
        }
        if task.attachments.len() >= max {
            return Ok(AttachmentRecorded::Full);
        }
        task.attachments.push(attachment.clone());
        Ok(AttachmentRecorded::Added)
    }

    async fn hold_charge(&self, task_id: &str, held: Option<chrono::DateTime<chrono::Utc>>, until: chrono::DateTime<chrono::Utc>) -> Result<Transitioned, StoreError> {
        let mut tasks = self.tasks.lock().unwrap();
        let Some(task) = tasks.get_mut(task_id) else { return Ok(Transitioned::Missing) };
        if task.status != TaskStatus::Charging || task.charge_held_until != held {
            return Ok(Transitioned::Conflict(Box::new(task.clone())));
        }
        task.charge_held_until = Some(until);
        Ok(Transitioned::Applied(Box::new(task.clone())))
    }

    async fn list_by_status(
        &self,
        status: TaskStatus,
        since: chrono::DateTime<chrono::Utc>,
        limit: u32,
        page: Option<crate::tasks::Page>,
    ) -> Result<(Vec<TaskRecord>, Option<crate::tasks::Page>), StoreError> {
        // Ordered like the store: by `closedAt` for a terminal status, else by `updatedAt`.
        let at = |t: &TaskRecord| if status.is_terminal() { t.closed_at.unwrap_or(t.updated_at) } else { t.updated_at };
        let mut tasks: Vec<TaskRecord> = self.tasks.lock().unwrap().values().filter(|t| t.status == status && at(t) >= since).cloned().collect();
        tasks.sort_by(|a, b| (at(b), &b.task_id).cmp(&(at(a), &a.task_id)));
        if let Some(page) = page {
            if let Some(i) = tasks.iter().position(|t| t.task_id == page.task_id) {
                tasks.drain(..=i);
            }
        }
        let limit = limit.max(1) as usize;
        let next = (tasks.len() > limit).then(|| {
            let last = &tasks[limit - 1];
            crate::tasks::Page { task_id: last.task_id.clone(), status, updated_at: serde_json::to_value(at(last)).unwrap().as_str().unwrap().to_string() }
        });
        tasks.truncate(limit);
        Ok((tasks, next))
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

/// The sandbox provider's rules with its charges and refunds in memory.
#[derive(Default)]
pub struct InMemoryPayments {
    /// key → (requests, issued id, amount)
    pub ledger: Mutex<HashMap<String, (u32, Option<String>, taskflow_contracts::Money)>>,
}

impl InMemoryPayments {
    /// Ids issued for keys ending in `suffix` (`/charge`, `/refund`, …).
    pub fn issued(&self, suffix: &str) -> usize {
        self.ledger.lock().unwrap().iter().filter(|(k, v)| k.ends_with(suffix) && v.1.is_some()).count()
    }
    pub fn requests(&self, key: &str) -> u32 {
        self.ledger.lock().unwrap().get(key).map_or(0, |v| v.0)
    }
}

#[async_trait]
impl crate::payments::PaymentProvider for InMemoryPayments {
    async fn charge(&self, request: &crate::payments::ChargeRequest) -> Result<crate::payments::Charge, crate::payments::PaymentError> {
        let mut ledger = self.ledger.lock().unwrap();
        let entry = ledger.entry(request.idempotency_key.clone()).or_insert((0, None, request.amount));
        entry.0 += 1;
        if let Some(id) = &entry.1 {
            return Ok(crate::payments::Charge { charge_id: id.clone() });
        }
        crate::payments::sandbox_outcome(&request.payment_token, entry.0)?;
        let id = format!("ch_{}", request.order_id);
        entry.1 = Some(id.clone());
        Ok(crate::payments::Charge { charge_id: id })
    }

    async fn refund(&self, request: &crate::payments::RefundRequest) -> Result<crate::payments::Refund, crate::payments::PaymentError> {
        let mut ledger = self.ledger.lock().unwrap();
        let entry = ledger.entry(request.idempotency_key.clone()).or_insert((0, None, request.amount));
        entry.0 += 1;
        let id = entry.1.get_or_insert_with(|| format!("re_{}", request.idempotency_key.replace('/', "_"))).clone();
        Ok(crate::payments::Refund { refund_id: id })
    }

    async fn find_charge(&self, idempotency_key: &str) -> Result<Option<crate::payments::Charge>, crate::payments::PaymentError> {
        let ledger = self.ledger.lock().unwrap();
        Ok(ledger.get(idempotency_key).and_then(|e| e.1.clone()).filter(|id| id.starts_with("ch_")).map(|charge_id| crate::payments::Charge { charge_id }))
    }
}

/// The ledger with the adapter's rules, in memory. [`InMemoryLedger::shared`] gives a handle on
/// the same entries (the fake inventory completes an entry through one, as the adapter's
/// reservation transaction does).
#[derive(Default)]
pub struct InMemoryLedger {
    pub entries: std::sync::Arc<Mutex<HashMap<String, crate::ledger::LedgerEntry>>>,
    /// `record_charge` calls (each one write of an entry on DynamoDB), over all handles.
    pub record_charges: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl InMemoryLedger {
    /// A second handle on these same entries.
    pub fn shared(&self) -> Self {
        Self { entries: self.entries.clone(), record_charges: self.record_charges.clone() }
    }
    /// The entry of `owner`'s order `order_id`.
    pub fn of(&self, owner: &str, order_id: &str) -> Option<crate::ledger::LedgerEntry> {
        self.entries.lock().unwrap().get(&taskflow_contracts::keys::task_id(owner, order_id)).cloned()
    }
}

#[async_trait]
impl crate::ledger::Ledger for InMemoryLedger {
    async fn get(&self, order_id: &str) -> Result<Option<crate::ledger::LedgerEntry>, crate::ledger::LedgerError> {
        Ok(self.entries.lock().unwrap().get(order_id).cloned())
    }
    async fn record_charge(&self, entry: &crate::ledger::LedgerEntry) -> Result<(), crate::ledger::LedgerError> {
        self.record_charges.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.entries.lock().unwrap().entry(entry.task_id.clone()).or_insert_with(|| entry.clone());
        Ok(())
    }
    async fn complete(&self, order_id: &str, at: chrono::DateTime<chrono::Utc>) -> Result<(), crate::ledger::LedgerError> {
        if let Some(e) = self.entries.lock().unwrap().get_mut(order_id) {
            if e.status == crate::ledger::EntryStatus::Charged {
                e.status = crate::ledger::EntryStatus::Completed;
                e.completed_at = Some(at);
            }
        }
        Ok(())
    }
    async fn apply_refund(
        &self,
        order_id: &str,
        refund_id: &str,
        amount: crate::ledger::RefundAmount,
        allowed: crate::ledger::EntryStatus,
        then: crate::ledger::EntryStatus,
    ) -> Result<crate::ledger::Applied, crate::ledger::LedgerError> {
        use crate::ledger::{refund_decision, Applied};
        let mut entries = self.entries.lock().unwrap();
        let Some(e) = entries.get_mut(order_id) else { return Ok(Applied::Missing) };
        let amount = match refund_decision(e, refund_id, amount, allowed, then) {
            Ok(amount) => amount,
            Err(answer) => return Ok(answer),
        };
        e.refunded += amount;
        e.refunds.insert(refund_id.to_string(), amount);
        e.status = then;
        Ok(Applied::Applied { amount })
    }
}

/// Stock in memory, per sku a level per shard, with reservations remembered per order like the
/// adapter's ledger mark (and the shards each took, which a release gives back). Reservations are
/// planned by `inventory::plan` on the true levels, as the adapter does on a consistent read.
#[derive(Default)]
pub struct InMemoryInventory {
    pub shards: Mutex<HashMap<String, Vec<u64>>>,
    /// Per order: `Some(takes)` reserved, `None` released or closed.
    pub reservations: Mutex<HashMap<String, Option<Vec<crate::ledger::StockTake>>>>,
    /// The ledger whose entries a reservation writes or completes (as the adapter's transaction
    /// does); none: reservations write no entry (tests of stock alone).
    pub ledger: Option<InMemoryLedger>,
}

impl InMemoryInventory {
    /// Skus with their stock on one shard each.
    pub fn with(stock: &[(&str, u64)]) -> Self {
        Self::with_shards(&stock.iter().map(|(s, n)| (*s, *n, 1)).collect::<Vec<_>>())
    }
    /// Skus with `(sku, available, shards)`: split as a stock load splits it.
    pub fn with_shards(stock: &[(&str, u64, u32)]) -> Self {
        let inventory = Self::default();
        inventory.shards.lock().unwrap().extend(stock.iter().map(|(s, n, k)| (s.to_string(), crate::inventory::split_stock(*n, *k))));
        inventory
    }
    /// Reservations complete the entries of `ledger` (a handle on the same entries).
    pub fn completing(mut self, ledger: &InMemoryLedger) -> Self {
        self.ledger = Some(ledger.shared());
        self
    }
    /// Units of `sku` over all its shards.
    pub fn available(&self, sku: &str) -> u64 {
        self.levels(sku).iter().sum()
    }
    /// The level of each shard of `sku`.
    pub fn levels(&self, sku: &str) -> Vec<u64> {
        self.shards.lock().unwrap().get(sku).cloned().unwrap_or_default()
    }
    /// What `order_id` holds reserved, by shard (`None`: nothing, or released).
    pub fn takes(&self, order_id: &str) -> Option<Vec<crate::ledger::StockTake>> {
        self.reservations.lock().unwrap().get(order_id).cloned().flatten()
    }
}

#[async_trait]
impl crate::inventory::Inventory for InMemoryInventory {
    async fn reserve(&self, charged: &crate::ledger::LedgerEntry, items: &[taskflow_contracts::OrderItem]) -> Result<crate::inventory::Reserved, crate::inventory::InventoryError> {
        use crate::inventory::{Reserved, Unplanned};
        let order_id = charged.task_id.as_str();
        let mut reservations = self.reservations.lock().unwrap();
        match reservations.get(order_id) {
            Some(Some(_)) => return Ok(Reserved::Reserved),
            Some(None) => return Ok(Reserved::Fenced),
            None => {}
        }
        let mut shards = self.shards.lock().unwrap();
        let takes = match crate::inventory::plan(order_id, items, &shards) {
            Ok(takes) => takes,
            Err(Unplanned::Short { sku } | Unplanned::TooManyShards { sku }) => return Ok(Reserved::OutOfStock { sku }),
        };
        for take in &takes {
            let level = &mut shards.get_mut(&take.sku).unwrap()[take.shard as usize];
            *level = level.checked_sub(take.quantity).expect("a plan never takes more than a shard has");
        }
        if let Some(ledger) = &self.ledger {
            // The entry written with the reservation, or the one there marked and completed.
            let mut entries = ledger.entries.lock().unwrap();
            let e = entries.entry(order_id.to_string()).or_insert_with(|| charged.clone());
            e.status = crate::ledger::EntryStatus::Completed;
            e.completed_at = Some(chrono::Utc::now());
            e.stock = Some(crate::ledger::StockState::Reserved);
            e.shards = takes.clone();
        }
        reservations.insert(order_id.to_string(), Some(takes));
        Ok(Reserved::Reserved)
    }

    async fn release(&self, order_id: &str, _items: &[taskflow_contracts::OrderItem]) -> Result<(), crate::inventory::InventoryError> {
        let mut reservations = self.reservations.lock().unwrap();
        if let Some(Some(takes)) = reservations.get(order_id) {
            let mut shards = self.shards.lock().unwrap();
            for take in takes {
                let levels = shards.entry(take.sku.clone()).or_default();
                if levels.len() <= take.shard as usize {
                    levels.resize(take.shard as usize + 1, 0);
                }
                levels[take.shard as usize] += take.quantity;
            }
        }
        // Released, or closed if it never was reserved: no reservation may follow.
        reservations.insert(order_id.to_string(), None);
        Ok(())
    }
}

/// The catalogue in memory: entries by sku; `unavailable` makes every read fail (transient);
/// `reads` counts the reads made.
#[derive(Default)]
pub struct InMemoryCatalogue {
    entries: Mutex<HashMap<String, crate::catalogue::CatalogueEntry>>,
    pub unavailable: std::sync::atomic::AtomicBool,
    pub reads: std::sync::atomic::AtomicUsize,
}

impl InMemoryCatalogue {
    pub fn with(entries: impl IntoIterator<Item = crate::catalogue::CatalogueEntry>) -> Self {
        let catalogue = Self::default();
        catalogue.put(entries);
        catalogue
    }

    /// Adds or replaces entries (an operator's catalogue load).
    pub fn put(&self, entries: impl IntoIterator<Item = crate::catalogue::CatalogueEntry>) {
        self.entries.lock().unwrap().extend(entries.into_iter().map(|e| (e.sku.clone(), e)));
    }
}

#[async_trait]
impl crate::catalogue::Catalogue for InMemoryCatalogue {
    async fn entries(&self, skus: &[&str]) -> Result<HashMap<String, crate::catalogue::CatalogueEntry>, crate::catalogue::CatalogueError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.unavailable.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::catalogue::CatalogueError::Unavailable("injected".into()));
        }
        let entries = self.entries.lock().unwrap();
        Ok(skus.iter().filter_map(|sku| entries.get(*sku).map(|e| (e.sku.clone(), e.clone()))).collect())
    }
}
