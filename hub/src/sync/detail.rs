//! The detail kept with a target's status (the `detail` JSON of a target row): the last message,
//! a refusal's reason, legal basis and remedy, a supplement request's missing materials, and the
//! time-limit facts (acceptance day, limit, pauses, extensions).
//!
//! Line systems write refusals as free text; [`Refusal::parse`] reads the usual
//! `理由：…；依据：…；救济途径：…` shape and keeps the whole text whatever the shape.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// A refusal (不予许可 / 不予受理): reasons, legal basis and remedy, told once (一次告知).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The reason (理由).
    pub reason: Option<String>,
    /// The legal basis (依据).
    pub legal_basis: Option<String>,
    /// The remedy (救济途径: 行政复议 / 行政诉讼).
    pub remedy: Option<String>,
    /// The whole message as the line system sent it.
    pub text: String,
}

impl Refusal {
    /// Reads the parts of a refusal message; parts not found stay `None`.
    pub fn parse(text: &str) -> Self {
        Self {
            reason: part(text, &["理由：", "理由:"]),
            legal_basis: part(text, &["依据：", "依据:", "法律依据："]),
            remedy: part(text, &["救济途径：", "救济途径:"]),
            text: text.to_owned(),
        }
    }
}

/// A supplement request (补正告知): what is missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplementRequest {
    /// The missing materials, as named by the line system (《…》 items).
    pub materials: Vec<String>,
    /// The whole message.
    pub text: String,
    /// When it was reported.
    pub at: Option<Timestamp>,
}

impl SupplementRequest {
    /// Reads the materials named in 《…》 from a supplement message.
    pub fn parse(text: &str, at: Timestamp) -> Self {
        let mut materials = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('《') {
            let after = &rest[open + '《'.len_utf8()..];
            let Some(close) = after.find('》') else {
                break;
            };
            materials.push(after[..close].to_owned());
            rest = &after[close + '》'.len_utf8()..];
        }
        Self {
            materials,
            text: text.to_owned(),
            at: Some(at),
        }
    }
}

/// A paused stretch of the clock: days `from..=to` do not count; `to` is `None` while paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// First day not counted (the day after the request).
    pub from: Date,
    /// Last day not counted (the day the clock resumed), `None` while paused.
    pub to: Option<Date>,
}

/// An approved extension of the time limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// Working days added.
    pub days: u32,
    /// Who approved it.
    pub approver: String,
    /// Why.
    pub reason: Option<String>,
    /// When it was recorded.
    pub at: Timestamp,
}

/// A supplement the platform sent on (materials by SHA-256 and a note).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplementSent {
    /// Materials' SHA-256.
    pub materials: Vec<String>,
    /// The note.
    pub note: Option<String>,
    /// The idempotency key of the supplement delivery.
    pub key: String,
    /// How the line system answered (`delivered`, `retry`, `rejected`, …).
    pub outcome: String,
    /// When.
    pub at: Timestamp,
}

/// Everything a target row keeps besides its indexed columns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetDetail {
    /// The last message of the line system.
    pub message: Option<String>,
    /// Set when the target was refused.
    pub refusal: Option<Refusal>,
    /// The last supplement request.
    pub supplement: Option<SupplementRequest>,
    /// Supplements sent on.
    pub supplements_sent: Vec<SupplementSent>,
    /// The day the line system accepted the case (counting starts the next day).
    pub accepted_on: Option<Date>,
    /// The statutory time limit in working days.
    pub limit_days: Option<u32>,
    /// Paused stretches.
    pub pauses: Vec<Pause>,
    /// Approved extensions.
    pub extensions: Vec<Extension>,
}

impl TargetDetail {
    /// Reads a stored detail; an unreadable one starts empty (logged by the caller).
    pub fn from_json(value: &serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(value.clone())
    }

    /// The detail as stored.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Whether the clock is paused now.
    pub fn paused(&self) -> bool {
        self.pauses.iter().any(|p| p.to.is_none())
    }

    /// Pauses the clock from the day after `day` (no-op when already paused).
    pub fn pause(&mut self, day: Date) {
        if !self.paused() {
            let from = day.tomorrow().unwrap_or(day);
            self.pauses.push(Pause { from, to: None });
        }
    }

    /// Resumes the clock: `day` is the last day not counted (no-op when running).
    pub fn resume(&mut self, day: Date) {
        if let Some(open) = self.pauses.iter_mut().find(|p| p.to.is_none()) {
            open.to = Some(day);
        }
        self.pauses.retain(|p| p.to.is_none_or(|to| to >= p.from));
    }

    /// Working days added by extensions.
    pub fn extension_days(&self) -> u32 {
        self.extensions.iter().map(|e| e.days).sum()
    }
}

fn part(text: &str, labels: &[&str]) -> Option<String> {
    let (start, label) = labels
        .iter()
        .filter_map(|label| text.find(label).map(|at| (at, *label)))
        .min_by_key(|(at, _)| *at)?;
    let value = &text[start + label.len()..];
    let end = value.find(['；', ';', '。']).unwrap_or(value.len());
    let value = value[..end].trim();
    (!value.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_parts_are_read_from_the_usual_shape() {
        let text = "不予许可。理由：住所证明不一致；依据：《市场主体登记管理条例》第二十一条；\
                    救济途径：如不服本决定，可申请行政复议。";
        let refusal = Refusal::parse(text);
        assert_eq!(refusal.reason.as_deref(), Some("住所证明不一致"));
        assert_eq!(
            refusal.legal_basis.as_deref(),
            Some("《市场主体登记管理条例》第二十一条")
        );
        assert_eq!(
            refusal.remedy.as_deref(),
            Some("如不服本决定，可申请行政复议")
        );
        assert_eq!(Refusal::parse("不予受理").reason, None);
    }

    #[test]
    fn supplement_materials_are_the_bracketed_names() {
        let at = Timestamp::UNIX_EPOCH;
        let request = SupplementRequest::parse("请补正以下材料：《营业执照》、《身份证明》", at);
        assert_eq!(request.materials, ["营业执照", "身份证明"]);
        assert!(SupplementRequest::parse("请补正", at).materials.is_empty());
    }

    #[test]
    fn pauses_open_once_and_close_on_resume() {
        let mut detail = TargetDetail::default();
        let day = |d: i8| Date::new(2026, 3, d).unwrap();
        detail.pause(day(2));
        detail.pause(day(3));
        assert!(detail.paused());
        detail.resume(day(5));
        assert_eq!(
            detail.pauses,
            [Pause {
                from: day(3),
                to: Some(day(5))
            }]
        );
        detail.pause(day(9));
        detail.resume(day(9));
        assert!(!detail.paused());
        assert_eq!(detail.pauses.len(), 1, "a same-day resume pauses nothing");
    }
}
