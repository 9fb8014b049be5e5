//! The capacity model: what taskflow sustains on AWS's default quotas, per path and region
//! class, which quota binds first, the Lambda concurrency that rate needs, and what to raise (or
//! shard) for a target rate. Pure arithmetic on what one order uses (measured on the local stack,
//! `stack.rs`) and the quotas in `bench/quotas.json` (each with its AWS source).
//!
//! - A token bucket (Step Functions API actions and state transitions) sustains its refill rate;
//!   a full bucket only buys a burst: at an offered rate `r` above the sustained one it empties
//!   after `bucket / (use × r − refill)` seconds.
//! - Orders/s a limit sustains = its rate / what one order uses of it; the path's sustained rate
//!   is the minimum over its limits, and that limit is the binding one.
//! - Lambda concurrency (Little's law): orders/s × invocations per order × mean billed duration
//!   per invocation = orders/s × billed seconds per order, per function; the account's
//!   concurrency quota is a limit like the others (use = billed seconds per order).
//! - A hot key (one DynamoDB item every order writes, e.g. a sku's stock) is one partition:
//!   1000 write units/s whatever the table's quota
//!   (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html>).
//!   No quota raises it; spreading the key over N items multiplies it by N.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// A token bucket: at most `bucket` tokens (the burst), refilled at `refill` per second (the
/// sustained rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub bucket: f64,
    pub refill: f64,
}

/// The default quotas of one region class (`regionClasses` in `bench/quotas.json`). Rates per
/// second, per account and region.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionClass {
    pub name: String,
    pub regions: String,
    pub start_execution: Rate,
    /// SendTaskSuccess + SendTaskFailure + SendTaskHeartbeat, as one bucket.
    pub send_task: Rate,
    pub state_transition: Rate,
    /// PutEvents requests per second (each of up to 10 entries).
    pub put_events: f64,
    /// Concurrent executions, all functions of the account in the region.
    pub lambda_concurrency: f64,
    /// Execution environments a function gains per 10 seconds.
    pub lambda_scaling_per_10s: f64,
    /// On-demand write units per second per table.
    pub table_write_units: f64,
    /// Write units per second per partition (per item for one key).
    pub partition_write_units: f64,
}

/// The target of the plan: `orders_per_s` of the path `mix` (weights summing to 1), with
/// `headroom` (×) over what that rate uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub orders_per_s: f64,
    pub headroom: f64,
    pub mix: BTreeMap<String, f64>,
}

/// `bench/quotas.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quotas {
    pub as_of: String,
    pub classes: Vec<RegionClass>,
    pub plan: Plan,
}

impl Quotas {
    pub fn load(path: &Path) -> Result<Quotas> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Quotas::parse(&serde_json::from_str(&text)?).with_context(|| format!("in {}", path.display()))
    }

    /// Errors when a value is missing or not a positive number.
    pub fn parse(file: &Value) -> Result<Quotas> {
        let number = |v: &Value, what: &str| -> Result<f64> {
            match v.as_f64() {
                Some(n) if n > 0.0 => Ok(n),
                _ => bail!("{what}: not a positive number ({v})"),
            }
        };
        let rate = |c: &Value, key: &str| -> Result<Rate> {
            Ok(Rate { bucket: number(&c[key]["bucket"], key)?, refill: number(&c[key]["refillPerSecond"], key)? })
        };
        let mut classes = Vec::new();
        for c in file["regionClasses"].as_array().context("regionClasses")? {
            classes.push(RegionClass {
                name: c["name"].as_str().context("a region class has a name")?.into(),
                regions: c["regions"].as_str().unwrap_or_default().into(),
                start_execution: rate(c, "startExecution")?,
                send_task: rate(c, "sendTask")?,
                state_transition: rate(c, "stateTransition")?,
                put_events: number(&c["putEventsPerSecond"]["value"], "putEventsPerSecond")?,
                lambda_concurrency: number(&c["lambdaConcurrency"]["value"], "lambdaConcurrency")?,
                lambda_scaling_per_10s: number(&c["lambdaScalingPer10Seconds"]["value"], "lambdaScalingPer10Seconds")?,
                table_write_units: number(&c["tableWriteUnitsPerSecond"]["value"], "tableWriteUnitsPerSecond")?,
                partition_write_units: number(&c["partitionWriteUnitsPerSecond"]["value"], "partitionWriteUnitsPerSecond")?,
            });
        }
        let plan = &file["plan"];
        let mix = plan["mix"]
            .as_object()
            .context("plan.mix")?
            .iter()
            .map(|(path, w)| Ok((path.clone(), number(w, "plan.mix")?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        let total: f64 = mix.values().sum();
        if (total - 1.0).abs() > 1e-9 {
            bail!("plan.mix: the weights add up to {total}, not 1");
        }
        Ok(Quotas {
            as_of: file["asOf"].as_str().context("asOf")?.into(),
            classes,
            plan: Plan { orders_per_s: number(&plan["ordersPerSecond"], "plan.ordersPerSecond")?, headroom: number(&plan["headroom"], "plan.headroom")?, mix },
        })
    }
}

/// One DynamoDB key every order of a path writes: `units_per_order` write units land on it,
/// spread evenly over `spread` items (stock shards, index shards; 1 = not spread).
#[derive(Debug, Clone, PartialEq)]
pub struct HotKey {
    pub name: String,
    pub units_per_order: f64,
    pub spread: u32,
}

/// What one order of a path uses, per quota it counts against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PerOrder {
    pub path: String,
    pub start_execution: f64,
    /// SendTaskSuccess + SendTaskFailure + SendTaskHeartbeat calls.
    pub send_task: f64,
    pub state_transitions: f64,
    /// PutEvents requests (not entries: the quota counts requests).
    pub put_events: f64,
    /// Per function: (invocations, billed milliseconds) per order.
    pub lambda: BTreeMap<String, (f64, f64)>,
    /// Per table: write units per order (index writes included).
    pub table_write_units: BTreeMap<String, f64>,
    pub hot_keys: Vec<HotKey>,
}

impl PerOrder {
    /// Billed Lambda seconds per order, all functions: the concurrency one order/s needs.
    pub fn lambda_seconds(&self) -> f64 {
        self.lambda.values().map(|(_, ms)| ms / 1000.0).sum()
    }
}

/// One limit as it applies to a path: `per_second` of it, `use_per_order` of it per order;
/// `bucket` is the burst a full token bucket allows beyond the rate (none: the rate is a hard
/// ceiling, as a partition's or the concurrency quota). `raisable`: a quota increase raises it.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub quota: String,
    pub use_per_order: f64,
    pub per_second: f64,
    pub bucket: Option<f64>,
    pub raisable: bool,
    /// For a hot key: the items it is spread over now.
    pub spread: Option<u32>,
    /// What `per_second` counts: "/s" for a rate, " concurrent" for the concurrency quota (a
    /// ceiling on executions at once, which Little's law turns into a rate).
    pub unit: &'static str,
}

impl Limit {
    /// Orders/s this limit sustains (infinite when an order does not use it).
    pub fn sustained(&self) -> f64 {
        if self.use_per_order > 0.0 { self.per_second / self.use_per_order } else { f64::INFINITY }
    }

    /// At `rate` orders/s: None if sustained, else how long until it throttles (seconds; 0 for
    /// a limit without a bucket).
    pub fn lasts_s(&self, rate: f64) -> Option<f64> {
        let deficit = self.use_per_order * rate - self.per_second;
        (deficit > 0.0).then(|| self.bucket.map_or(0.0, |b| b / deficit))
    }
}

/// Every limit an order of `order`'s path counts against in `class`.
pub fn limits(order: &PerOrder, class: &RegionClass) -> Vec<Limit> {
    let bucket = |quota: &str, use_per_order: f64, rate: Rate| Limit {
        quota: quota.into(),
        use_per_order,
        per_second: rate.refill,
        bucket: Some(rate.bucket),
        raisable: true,
        spread: None,
        unit: "/s",
    };
    let ceiling = |quota: String, use_per_order: f64, per_second: f64| Limit { quota, use_per_order, per_second, bucket: None, raisable: true, spread: None, unit: "/s" };
    let mut limits = vec![
        bucket("Step Functions StartExecution", order.start_execution, class.start_execution),
        bucket("Step Functions SendTask* (incl. heartbeats)", order.send_task, class.send_task),
        bucket("Step Functions StateTransition", order.state_transitions, class.state_transition),
        ceiling("EventBridge PutEvents requests".into(), order.put_events, class.put_events),
        Limit { unit: " concurrent", ..ceiling("Lambda concurrency (account)".into(), order.lambda_seconds(), class.lambda_concurrency) },
    ];
    for (table, units) in &order.table_write_units {
        limits.push(ceiling(format!("DynamoDB write units, table {table}"), *units, class.table_write_units));
    }
    for key in &order.hot_keys {
        limits.push(Limit {
            quota: format!("hot key: {}", key.name),
            use_per_order: key.units_per_order,
            per_second: class.partition_write_units * key.spread.max(1) as f64,
            bucket: None,
            raisable: false,
            spread: Some(key.spread.max(1)),
            unit: "/s",
        });
    }
    limits
}

/// Per function: the concurrency `rate` orders/s needs (Little's law: rate × invocations per
/// order × mean billed ms per invocation / 1000 = rate × billed seconds per order).
pub fn concurrency(order: &PerOrder, rate: f64) -> BTreeMap<String, f64> {
    order.lambda.iter().map(|(f, (_, ms))| (f.clone(), rate * ms / 1000.0)).collect()
}

/// A path's capacity in one region class.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    pub path: String,
    pub class: String,
    /// Orders/s sustained on default quotas (the minimum over the limits).
    pub sustained: f64,
    /// The limit that sets it.
    pub binding: String,
    /// Lambda concurrency at the sustained rate, all functions.
    pub lambda_concurrency: f64,
    pub per_function: BTreeMap<String, f64>,
    /// Offered `at` orders/s: how long until the first limit throttles (None: sustained).
    pub at: f64,
    pub lasts_s: Option<f64>,
    pub limiting_at: Option<String>,
}

/// The capacity of `order`'s path in `class`, and how long an offered `at` orders/s lasts.
pub fn capacity(order: &PerOrder, class: &RegionClass, at: f64) -> Capacity {
    let limits = limits(order, class);
    let binding = limits.iter().min_by(|a, b| a.sustained().total_cmp(&b.sustained())).expect("there are always limits");
    let sustained = binding.sustained();
    let first = limits.iter().filter_map(|l| Some((l, l.lasts_s(at)?))).min_by(|a, b| a.1.total_cmp(&b.1));
    let per_function = concurrency(order, sustained);
    Capacity {
        path: order.path.clone(),
        class: class.name.clone(),
        sustained,
        binding: binding.quota.clone(),
        lambda_concurrency: per_function.values().sum(),
        per_function,
        at,
        lasts_s: first.map(|(_, s)| s),
        limiting_at: first.map(|(l, _)| l.quota.clone()),
    }
}

/// What an order of `mix` uses on average: each path's use weighted by its share. Errors when
/// a path of the mix was not measured.
pub fn mixed(orders: &[PerOrder], mix: &BTreeMap<String, f64>) -> Result<PerOrder> {
    let mut out = PerOrder { path: mix.iter().map(|(p, w)| format!("{p} {:.0}%", w * 100.0)).collect::<Vec<_>>().join(", "), ..PerOrder::default() };
    let mut hot: BTreeMap<String, HotKey> = BTreeMap::new();
    for (path, weight) in mix {
        let o = orders.iter().find(|o| &o.path == path).with_context(|| format!("the plan's mix names path {path:?}, which was not measured"))?;
        out.start_execution += weight * o.start_execution;
        out.send_task += weight * o.send_task;
        out.state_transitions += weight * o.state_transitions;
        out.put_events += weight * o.put_events;
        for (f, (calls, ms)) in &o.lambda {
            let e = out.lambda.entry(f.clone()).or_default();
            e.0 += weight * calls;
            e.1 += weight * ms;
        }
        for (t, units) in &o.table_write_units {
            *out.table_write_units.entry(t.clone()).or_default() += weight * units;
        }
        for key in &o.hot_keys {
            let e = hot.entry(key.name.clone()).or_insert(HotKey { units_per_order: 0.0, ..key.clone() });
            e.units_per_order += weight * key.units_per_order;
        }
    }
    out.hot_keys = hot.into_values().collect();
    Ok(out)
}

/// One line of the plan: a limit, what it allows by default, what the target needs, and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub quota: String,
    /// Per second by default (for a hot key: per item × the items it is spread over now).
    pub default: f64,
    /// Per second the target needs, headroom included.
    pub needed: f64,
    /// "default suffices", "raise to N/s" ("raise to N concurrent"), or for a hot key
    /// "spread over N items (now M)".
    pub action: String,
    pub met_by_default: bool,
    /// As `Limit::unit`.
    pub unit: &'static str,
}

/// The plan for `plan.orders_per_s` orders of the mix `order` in `class`: needed =
/// rate × use per order × headroom for every limit; a quota is raised to that (rounded up to a
/// whole unit), a hot key is spread over ⌈needed / per-item rate⌉ items.
pub fn plan(order: &PerOrder, class: &RegionClass, plan: &Plan) -> Vec<Step> {
    limits(order, class)
        .into_iter()
        .filter(|l| l.use_per_order > 0.0)
        .map(|l| {
            let needed = plan.orders_per_s * l.use_per_order * plan.headroom;
            let met = needed <= l.per_second;
            let action = match (met, l.spread) {
                (true, _) => "default suffices".to_string(),
                (false, Some(now)) => {
                    let per_item = l.per_second / now as f64;
                    format!("spread over {} items (now {now}): no quota raises a partition", (needed / per_item).ceil() as u64)
                }
                (false, None) => format!("raise to {}{}", needed.ceil() as u64, l.unit),
            };
            Step { quota: l.quota, default: l.per_second, needed, action, met_by_default: met, unit: l.unit }
        })
        .collect()
}

/// How long each function takes to scale to the concurrency `needed` at AWS's scaling rate
/// (`per_10s` environments every 10 seconds, from zero), in seconds.
pub fn scale_up_s(needed: f64, per_10s: f64) -> f64 {
    (needed / per_10s).ceil() * 10.0
}

/// A sku's stock shards in the catalogue (`infra/local/catalogue.json`): its `stockShards`, 1
/// when the field (or the sku) is absent. Errors on a value that is not an integer ≥ 1.
pub fn stock_shards(catalogue: &Value, sku: &str) -> Result<u32> {
    let entry = catalogue.as_array().into_iter().flatten().find(|e| e["sku"].as_str() == Some(sku));
    match entry.map(|e| &e["stockShards"]) {
        None | Some(Value::Null) => Ok(1),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n <= u32::MAX as u64 => Ok(n as u32),
            _ => bail!("{sku}: stockShards {v} is not an integer ≥ 1"),
        },
    }
}

impl Capacity {
    pub fn to_json(&self) -> Value {
        json!({"path": self.path, "regionClass": self.class, "sustainedOrdersPerSecond": self.sustained, "binding": self.binding,
               "lambdaConcurrency": self.lambda_concurrency, "lambdaConcurrencyPerFunction": self.per_function,
               "offeredOrdersPerSecond": self.at, "throttlesAfterSeconds": self.lasts_s, "throttledFirstBy": self.limiting_at})
    }
}

impl Step {
    pub fn to_json(&self) -> Value {
        json!({"quota": self.quota, "default": self.default, "needed": self.needed, "unit": self.unit.trim(), "action": self.action, "metByDefault": self.met_by_default})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_a() -> RegionClass {
        RegionClass {
            name: "A".into(),
            regions: "us-east-1, us-west-2, eu-west-1".into(),
            start_execution: Rate { bucket: 1300.0, refill: 300.0 },
            send_task: Rate { bucket: 3000.0, refill: 500.0 },
            state_transition: Rate { bucket: 5000.0, refill: 1500.0 },
            put_events: 10_000.0,
            lambda_concurrency: 1000.0,
            lambda_scaling_per_10s: 1000.0,
            table_write_units: 40_000.0,
            partition_write_units: 1000.0,
        }
    }

    fn class_b() -> RegionClass {
        RegionClass {
            name: "B".into(),
            regions: "all other regions".into(),
            start_execution: Rate { bucket: 800.0, refill: 150.0 },
            send_task: Rate { bucket: 1500.0, refill: 300.0 },
            state_transition: Rate { bucket: 800.0, refill: 500.0 },
            put_events: 400.0,
            ..class_a()
        }
    }

    /// A purchase: 1 StartExecution, 2 task-token answers, 3 transitions, 4 PutEvents; intake
    /// 20 ms, purchase 50 ms, notification 30 ms (one invocation each); 10 units on the task
    /// table, 2 on inventory, all of them on one sku's stock item spread over `shards`.
    fn purchase(shards: u32) -> PerOrder {
        PerOrder {
            path: "purchase completed".into(),
            start_execution: 1.0,
            send_task: 2.0,
            state_transitions: 3.0,
            put_events: 4.0,
            lambda: [("intake", (1.0, 20.0)), ("purchase", (1.0, 50.0)), ("notification", (1.0, 30.0))].into_iter().map(|(f, v)| (f.to_string(), v)).collect(),
            table_write_units: [("tasks".to_string(), 10.0), ("inventory".to_string(), 2.0)].into_iter().collect(),
            hot_keys: vec![HotKey { name: "stock of one sku".into(), units_per_order: 2.0, spread: shards }],
        }
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-6, "{a} ≠ {b}");
    }

    #[test]
    fn the_binding_quota_is_the_smallest_refill_over_use() {
        // Class A, by hand: StartExecution 300/1 = 300; SendTask* 500/2 = 250; StateTransition
        // 1500/3 = 500; PutEvents 10000/4 = 2500; Lambda 1000 / (0.02+0.05+0.03 s) = 10000;
        // tasks 40000/10 = 4000; inventory 40000/2 = 20000; stock item 1000×4/2 = 2000.
        // Minimum: SendTask* at 250 orders/s.
        let a = capacity(&purchase(4), &class_a(), 1000.0);
        close(a.sustained, 250.0);
        assert_eq!(a.binding, "Step Functions SendTask* (incl. heartbeats)");
        // Little's law at 250/s: intake 250×0.020 = 5, purchase 250×0.050 = 12.5,
        // notification 250×0.030 = 7.5; 25 in all.
        close(a.per_function["intake"], 5.0);
        close(a.per_function["purchase"], 12.5);
        close(a.per_function["notification"], 7.5);
        close(a.lambda_concurrency, 25.0);
        // At 1000/s: StartExecution 1300/(1000−300) = 1.857 s; SendTask* 3000/(2000−500) = 2 s;
        // StateTransition 5000/(3000−1500) = 3.33 s; the stock item (4000/s) holds.
        // The first to empty: StartExecution after 1.857 s.
        close(a.lasts_s.unwrap(), 1300.0 / 700.0);
        assert_eq!(a.limiting_at.as_deref(), Some("Step Functions StartExecution"));

        // Class B: StartExecution 150/1 = 150; SendTask* 300/2 = 150; StateTransition 500/3 =
        // 166.7; PutEvents 400/4 = 100: PutEvents binds at 100 orders/s.
        let b = capacity(&purchase(4), &class_b(), 1000.0);
        close(b.sustained, 100.0);
        assert_eq!(b.binding, "EventBridge PutEvents requests");
        close(b.lambda_concurrency, 10.0);
        // PutEvents has no bucket: 4000 requests/s > 400 throttles at once.
        close(b.lasts_s.unwrap(), 0.0);
    }

    #[test]
    fn an_unsharded_hot_sku_binds_below_the_step_functions_quotas_once_they_are_raised() {
        // One stock item: 1000 WCU / 2 units per reservation = 500 orders/s; with SendTask*
        // raised to 2000/s (1000 orders/s) it is the binding limit.
        let mut raised = class_a();
        raised.start_execution.refill = 5000.0;
        raised.send_task.refill = 2000.0;
        raised.state_transition.refill = 5000.0;
        let c = capacity(&purchase(1), &raised, 1000.0);
        close(c.sustained, 500.0);
        assert_eq!(c.binding, "hot key: stock of one sku");
        // At 1000/s the item needs 2000 WCU > 1000, and a partition has no bucket: at once.
        close(c.lasts_s.unwrap(), 0.0);
        // Eight shards: 1000 × 8 / 2 = 4000 reservations/s; then SendTask* (2000/2 = 1000) binds.
        let c = capacity(&purchase(8), &raised, 1000.0);
        close(c.sustained, 1000.0);
        assert_eq!(c.lasts_s, None);
    }

    #[test]
    fn the_plan_raises_each_short_quota_to_rate_times_use_times_headroom_and_shards_hot_keys() {
        // 1000/s × 1.2: StartExecution 1×1200 = 1200 > 300: raise to 1200/s; SendTask* 2400 >
        // 500; StateTransition 3600 > 1500; PutEvents 4800 ≤ 10000; Lambda 1000×0.1×1.2 = 120 ≤
        // 1000; tasks 12000 ≤ 40000; inventory 2400 ≤ 40000; the stock item 2400 WCU over
        // 1000/item: ⌈2.4⌉ = 3 items.
        let target = Plan { orders_per_s: 1000.0, headroom: 1.2, mix: BTreeMap::new() };
        let steps = plan(&purchase(1), &class_a(), &target);
        let action = |q: &str| steps.iter().find(|s| s.quota.contains(q)).unwrap_or_else(|| panic!("{q}")).action.clone();
        assert_eq!(action("StartExecution"), "raise to 1200/s");
        assert_eq!(action("SendTask*"), "raise to 2400/s");
        assert_eq!(action("StateTransition"), "raise to 3600/s");
        assert_eq!(action("PutEvents"), "default suffices");
        assert_eq!(action("Lambda"), "default suffices");
        assert_eq!(action("table tasks"), "default suffices");
        // Lambda at 1000/s with purchase at 1150 ms: 0.02 + 1.15 + 0.03 = 1.2 s an order;
        // 1000 × 1.2 × 1.2 = 1440 concurrent > 1000.
        let mut slow = purchase(1);
        slow.lambda.insert("purchase".into(), (1.0, 1150.0));
        let steps = plan(&slow, &class_a(), &target);
        let lambda = steps.iter().find(|s| s.quota.starts_with("Lambda")).unwrap();
        assert_eq!(lambda.action, "raise to 1440 concurrent");
        let steps = plan(&purchase(1), &class_a(), &target);
        assert_eq!(action("table inventory"), "default suffices");
        assert_eq!(action("hot key"), "spread over 3 items (now 1): no quota raises a partition");
        let stock = steps.iter().find(|s| s.quota.starts_with("hot key")).unwrap();
        close(stock.needed, 2400.0);
        close(stock.default, 1000.0);
        // Already spread over 4 items (4000 WCU/s ≥ 2400): nothing to do.
        let steps = plan(&purchase(4), &class_a(), &target);
        assert!(steps.iter().find(|s| s.quota.starts_with("hot key")).unwrap().met_by_default);
        // Scaling to purchase's 1000 × 0.05 × 1.2 = 60 environments: one 10 s step; 2500: 30 s.
        close(scale_up_s(60.0, 1000.0), 10.0);
        close(scale_up_s(2500.0, 1000.0), 30.0);
    }

    #[test]
    fn a_mix_weighs_each_paths_use_by_its_share() {
        // 75% purchases, 25% rejections (no execution, one PutEvents, intake 10 ms):
        // StartExecution 0.75×1 = 0.75; PutEvents 0.75×4 + 0.25×1 = 3.25; intake ms
        // 0.75×20 + 0.25×10 = 17.5; the stock item 0.75×2 = 1.5 units.
        let rejected = PerOrder {
            path: "order rejected".into(),
            put_events: 1.0,
            lambda: [("intake".to_string(), (1.0, 10.0))].into_iter().collect(),
            ..PerOrder::default()
        };
        let mix: BTreeMap<String, f64> = [("purchase completed".to_string(), 0.75), ("order rejected".to_string(), 0.25)].into_iter().collect();
        let m = mixed(&[purchase(2), rejected], &mix).unwrap();
        close(m.start_execution, 0.75);
        close(m.put_events, 3.25);
        close(m.lambda["intake"].1, 17.5);
        close(m.lambda["intake"].0, 1.0);
        assert_eq!(m.hot_keys, vec![HotKey { name: "stock of one sku".into(), units_per_order: 1.5, spread: 2 }]);
        // In class A: SendTask* 500/1.5 = 333.3 binds (StartExecution 300/0.75 = 400).
        let c = capacity(&m, &class_a(), 1000.0);
        close(c.sustained, 500.0 / 1.5);
        let unknown: BTreeMap<String, f64> = [("refund completed".to_string(), 1.0)].into_iter().collect();
        assert!(mixed(&[purchase(1)], &unknown).is_err());
    }

    #[test]
    fn stock_shards_default_to_one_when_absent() {
        let catalogue = json!([{"sku": "BOOK-1"}, {"sku": "HOT-1", "stockShards": 8}, {"sku": "BAD-1", "stockShards": 0}]);
        assert_eq!(stock_shards(&catalogue, "BOOK-1").unwrap(), 1);
        assert_eq!(stock_shards(&catalogue, "HOT-1").unwrap(), 8);
        assert_eq!(stock_shards(&catalogue, "NONE-1").unwrap(), 1);
        assert!(stock_shards(&catalogue, "BAD-1").is_err());
    }

    #[test]
    fn the_quota_file_parses_and_its_mix_adds_up() {
        let quotas = Quotas::parse(&serde_json::from_str(include_str!("../quotas.json")).unwrap()).unwrap();
        assert_eq!(quotas.classes, vec![class_a(), class_b()]);
        close(quotas.plan.orders_per_s, 1000.0);
        let mut bad: Value = serde_json::from_str(include_str!("../quotas.json")).unwrap();
        bad["plan"]["mix"] = json!({"purchase completed": 0.5});
        assert!(Quotas::parse(&bad).is_err());
    }
}
