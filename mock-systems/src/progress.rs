//! Case lifecycles: each taken case walks received → accepted → in review → a decision, one step
//! per `Runtime::step`, in the system's own raw codes.
//!
//! The path of a case depends only on the seed, the system id and the idempotency key, so a run
//! is reproducible. States the system's `[status]` table lacks are skipped. Refusals carry a
//! reason, the legal basis (依据) and the remedy (行政复议 / 行政诉讼); supplement requests list the
//! missing materials.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::catalogue::{KindSpec, SystemSpec};
use crate::notify::{self, CallbackJob};
use crate::sign::MacAlgorithm;
use crate::state::{Fleet, Runtime, Sink, SystemEntry, fnv};

/// One status of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Hub state name (`accepted`, …).
    pub state: &'static str,
    /// The system's raw code for it.
    pub code: String,
    /// The system's message.
    pub message: String,
}

/// The steps a case goes through and where it is. Invariant: `steps` is never empty (every
/// constructor pushes at least one step), so [`Lifecycle::current`] always has a step to show.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    steps: Vec<Step>,
    at: usize,
}

const REASONS: [&str; 3] = [
    "申请材料中的住所证明与登记机关核实情况不一致",
    "经营范围涉及前置审批事项，未取得相关许可",
    "申请人不符合法定条件",
];
const BASES: [&str; 3] = [
    "《中华人民共和国行政许可法》第三十八条第二款",
    "《中华人民共和国市场主体登记管理条例》第十五条",
    "《广东省行政许可监督管理条例》第二十条",
];
const MATERIALS: [&str; 5] = [
    "法定代表人身份证明复印件",
    "住所使用证明",
    "公司章程（全体股东签署）",
    "委托代理人授权委托书",
    "场地平面图",
];

impl Lifecycle {
    /// Plans the steps of the case with idempotency key `key`.
    pub fn plan(spec: &SystemSpec, runtime: &Runtime, key: &str) -> Self {
        let seed = runtime.seed ^ fnv(&spec.id) ^ fnv(key).rotate_left(17);
        let mut rng = StdRng::seed_from_u64(seed);
        let roll: f64 = rng.random();
        let refused = roll < runtime.refusal_share;
        let supplement = !refused && roll < runtime.refusal_share + runtime.supplement_share;
        let mut states = vec!["received", "accepted", "in_review"];
        if supplement {
            states.extend(["supplement_required", "in_review"]);
        }
        if refused {
            let final_state = if spec.codes.contains_key("rejected") {
                "rejected"
            } else {
                "not_accepted"
            };
            states.push(final_state);
        } else {
            states.push("approved");
        }
        let mut steps: Vec<Step> = states
            .into_iter()
            .filter_map(|state| {
                let code = spec.codes.get(state)?.clone();
                Some(Step {
                    state,
                    code,
                    message: message(state, &mut rng),
                })
            })
            .collect();
        if steps.is_empty() {
            steps.push(Step {
                state: "received",
                code: "01".to_owned(),
                message: message("received", &mut rng),
            });
        }
        Self { steps, at: 0 }
    }

    /// A case refused at intake (不予受理): one final step in the system's `not_accepted` code
    /// (else `rejected`), with reason, legal basis and remedy.
    pub fn refused_at_intake(spec: &SystemSpec, runtime: &Runtime, key: &str) -> Self {
        let seed = runtime.seed ^ fnv(&spec.id) ^ fnv(key).rotate_left(17);
        let mut rng = StdRng::seed_from_u64(seed);
        let (state, code) = ["not_accepted", "rejected"]
            .into_iter()
            .find_map(|state| Some((state, spec.codes.get(state)?.clone())))
            .unwrap_or(("not_accepted", "99".to_owned()));
        let message = message(state, &mut rng).replacen("不予许可", "不予受理", 1);
        Self {
            steps: vec![Step {
                state,
                code,
                message,
            }],
            at: 0,
        }
    }

    /// The current step.
    pub fn current(&self) -> &Step {
        &self.steps[self.at.min(self.steps.len() - 1)]
    }

    /// Whether the case reached its last step.
    pub fn finished(&self) -> bool {
        self.at + 1 >= self.steps.len()
    }

    /// Moves one step on; `None` when already finished.
    pub fn advance(&mut self) -> Option<&Step> {
        if self.finished() {
            return None;
        }
        self.at += 1;
        Some(self.current())
    }
}

fn message(state: &str, rng: &mut StdRng) -> String {
    match state {
        "received" => "已收件，等待受理".to_owned(),
        "accepted" => "已受理".to_owned(),
        "in_review" => "审查中".to_owned(),
        "supplement_required" => {
            let first = rng.random_range(0..MATERIALS.len());
            let second = (first + 1 + rng.random_range(0..MATERIALS.len() - 1)) % MATERIALS.len();
            format!(
                "补正告知（一次告知）：请补正以下材料：《{}》、《{}》",
                MATERIALS[first], MATERIALS[second]
            )
        }
        "approved" => "准予许可，决定书及证照已制作".to_owned(),
        "rejected" | "not_accepted" => {
            let pick = rng.random_range(0..REASONS.len());
            format!(
                "不予许可。理由：{}；依据：{}；救济途径：如不服本决定，可自收到决定书之日起六十日内依法申请行政复议，或者六个月内依法向人民法院提起行政诉讼。",
                REASONS[pick], BASES[pick]
            )
        }
        _ => "状态变更".to_owned(),
    }
}

/// A status change to tell the world about.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The case's receipt number.
    pub receipt_no: String,
    /// The case's idempotency key.
    pub key: String,
    /// The new step.
    pub step: Step,
    /// Where it goes.
    pub sink: Sink,
    /// Its number among the case's status changes (1 = the first receipt).
    pub seq: u32,
}

/// Moves due cases on until shutdown.
pub async fn run(fleet: Arc<Fleet>) {
    let tick = (fleet.runtime.step / 4).clamp(
        std::time::Duration::from_millis(5),
        std::time::Duration::from_millis(200),
    );
    loop {
        tokio::select! {
            () = fleet.shutdown.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
        for entry in fleet.systems.values() {
            for transition in due(entry, &fleet.runtime) {
                emit(&fleet, entry, transition).await;
            }
        }
    }
}

fn due(entry: &SystemEntry, runtime: &Runtime) -> Vec<Transition> {
    let now = tokio::time::Instant::now();
    let mut state = entry.lock();
    let mut out = Vec::new();
    for case in &mut state.cases {
        if case.next_at > now || case.lifecycle.finished() {
            continue;
        }
        case.next_at = now + runtime.step;
        if let Some(step) = case.lifecycle.advance() {
            let step = step.clone();
            case.emitted += 1;
            out.push(Transition {
                receipt_no: case.receipt_no.clone(),
                key: case.key.clone(),
                step,
                sink: case.sink.clone(),
                seq: case.emitted,
            });
        }
    }
    out
}

/// Sends one status change where it goes.
pub async fn emit(fleet: &Arc<Fleet>, entry: &Arc<SystemEntry>, transition: Transition) {
    match &transition.sink {
        Sink::Poll => {}
        Sink::FileReceipts { stem } => {
            if entry.receipts_suppressed() {
                tracing::info!(system = %entry.spec.id, "receipt withheld by fault plan");
                return;
            }
            crate::file::write_status_receipt(fleet, entry, stem, &transition);
        }
        Sink::RestCallback => {
            let KindSpec::Rest(rest) = &entry.spec.kind else {
                return;
            };
            let body = serde_json::json!({
                "receiptNo": transition.receipt_no,
                "status": transition.step.code,
                "message": transition.step.message,
                "at": jiff::Timestamp::now().to_string(),
            });
            let key = rest.secret.as_ref().map(|s| s.expose().as_bytes().to_vec());
            let path = format!("/v1/callbacks/{}", entry.spec.id);
            spawn_callback(fleet, entry, path, MacAlgorithm::Sha256, key, body);
        }
        Sink::JumpCallback { delivery } => {
            let KindSpec::Jump(jump) = &entry.spec.kind else {
                return;
            };
            let body = serde_json::json!({
                "system": entry.spec.id,
                "delivery": delivery,
                "line_case_no": transition.receipt_no,
                "status": transition.step.code,
                "message": transition.step.message,
            });
            let key = Some(jump.key.expose().as_bytes().to_vec());
            let algorithm = MacAlgorithm::from_name(&jump.algorithm);
            spawn_callback(
                fleet,
                entry,
                "/v1/jump/callback".to_owned(),
                algorithm,
                key,
                body,
            );
        }
    }
}

fn spawn_callback(
    fleet: &Arc<Fleet>,
    entry: &Arc<SystemEntry>,
    path: String,
    algorithm: MacAlgorithm,
    key: Option<Vec<u8>>,
    body: serde_json::Value,
) {
    let job = CallbackJob {
        entry: Arc::clone(entry),
        path,
        algorithm,
        key,
        body,
    };
    notify::enqueue(fleet, job);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::catalogue::{JumpSpec, KindSpec};
    use crate::secret::Secret;

    fn spec(codes: &[(&str, &str)]) -> SystemSpec {
        SystemSpec {
            id: "X01".into(),
            name: "测试系统".into(),
            charset: "utf-8".into(),
            codes: codes
                .iter()
                .map(|(state, code)| ((*state).to_owned(), (*code).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            kind: KindSpec::Jump(JumpSpec {
                entry_path: "/jump".into(),
                algorithm: "hmac-sha256".into(),
                key: Secret::new("k"),
            }),
        }
    }

    fn runtime(refusal: f64, supplement: f64) -> Runtime {
        Runtime {
            hub_url: String::new(),
            files_dir: std::env::temp_dir(),
            step: Duration::from_secs(1),
            seed: 7,
            refusal_share: refusal,
            supplement_share: supplement,
            token_ttl: Duration::from_secs(1),
        }
    }

    fn codes(mut lifecycle: Lifecycle) -> Vec<String> {
        let mut out = vec![lifecycle.current().code.clone()];
        while let Some(step) = lifecycle.advance() {
            out.push(step.code.clone());
        }
        assert!(lifecycle.finished());
        out
    }

    const FULL: [(&str, &str); 6] = [
        ("received", "00"),
        ("accepted", "01"),
        ("in_review", "02"),
        ("supplement_required", "03"),
        ("approved", "09"),
        ("rejected", "10"),
    ];

    #[test]
    fn approval_path_uses_the_systems_codes_and_skips_missing_states() {
        let full = Lifecycle::plan(&spec(&FULL), &runtime(0.0, 0.0), "k");
        assert_eq!(codes(full), ["00", "01", "02", "09"]);
        let short = spec(&[("accepted", "SL"), ("approved", "BJ")]);
        assert_eq!(
            codes(Lifecycle::plan(&short, &runtime(0.0, 0.0), "k")),
            ["SL", "BJ"]
        );
    }

    #[test]
    fn refusals_and_supplements_follow_the_shares() {
        let refused = Lifecycle::plan(&spec(&FULL), &runtime(1.0, 0.0), "k");
        let last = refused.steps.last().unwrap().clone();
        assert_eq!(last.state, "rejected");
        assert!(last.message.contains("依据") && last.message.contains("行政诉讼"));
        let supplement = Lifecycle::plan(&spec(&FULL), &runtime(0.0, 1.0), "k");
        assert_eq!(codes(supplement), ["00", "01", "02", "03", "02", "09"]);
        let not_accepted = spec(&[("accepted", "1"), ("not_accepted", "N")]);
        assert_eq!(
            codes(Lifecycle::plan(&not_accepted, &runtime(1.0, 0.0), "k")),
            ["1", "N"]
        );
    }

    #[test]
    fn the_same_seed_and_key_give_the_same_path() {
        let a = Lifecycle::plan(&spec(&FULL), &runtime(0.3, 0.3), "key-1");
        let b = Lifecycle::plan(&spec(&FULL), &runtime(0.3, 0.3), "key-1");
        assert_eq!(a.steps, b.steps);
    }
}
