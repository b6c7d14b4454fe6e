//! The access control list of a secured cluster (zenoh's `access_control`
//! config section), generated from the key layout of the protocol.
//!
//! Every process enforces it on each of its links, on what arrives
//! (ingress) and what leaves (egress), knowing the remote's role by its
//! certificate's common name. The default is deny: a peer whose name is no
//! member's can neither send nor receive anything, not even see liveliness
//! tokens. Members may receive anything of `ffq/<cluster>/**` (egress),
//! but each role may only send what its part of the protocol needs
//! (ingress), where `P` is `ffq/<cluster>`:
//!
//! | role | may ask (query) | may answer (queryable, reply) | liveliness |
//! |---|---|---|---|
//! | coordinator | `P/ctl/worker/*/*` | `P/ctl/coordinator/*` | token `P/coordinator`; watches `P/worker/*`, `P/client/*` |
//! | worker | `P/ctl/coordinator/report`, `P/data/**`, `P/ctl/client/*/table` | `P/ctl/worker/*/*`, `P/data/**` | token `P/worker/*`; watches `P/coordinator` |
//! | client | `P/ctl/coordinator/{submit,events,finish,status,profile}`, `P/ctl/worker/*/state`, `P/data/**` | `P/ctl/client/*/table` | token `P/client/*` |
//!
//! So a worker's identity cannot submit queries, answer as the
//! coordinator or assign tasks; a client's cannot declare a worker or
//! serve data. What key expressions cannot tell apart stays open to a
//! role as a whole: any worker may register any worker id and report on
//! any attempt, and any client may read the outputs of any query (keys do
//! not name the client); telling those apart needs per-member checks in
//! the protocol itself.

use ffq_transport::zenoh_exchange::ClusterId;
use serde_json::{json, Value};

use super::{Members, Role};

/// Every message kind zenoh's ACL knows.
const ALL_MESSAGES: [&str; 9] = [
    "put",
    "delete",
    "declare_subscriber",
    "query",
    "reply",
    "declare_queryable",
    "liveliness_token",
    "liveliness_query",
    "declare_liveliness_subscriber",
];

const ANSWER: [&str; 2] = ["declare_queryable", "reply"];
const WATCH: [&str; 2] = ["declare_liveliness_subscriber", "liveliness_query"];

/// One ACL rule: `messages` on `keys` (relative to `ffq/<cluster>`) in
/// `flow`.
struct Rule {
    id: String,
    flow: &'static str,
    messages: Vec<&'static str>,
    keys: Vec<&'static str>,
}

fn ingress(id: &str, messages: &[&'static str], keys: &[&'static str]) -> Rule {
    Rule {
        id: id.to_string(),
        flow: "ingress",
        messages: messages.to_vec(),
        keys: keys.to_vec(),
    }
}

/// What a peer of `role` may send to this process (the table of the
/// module doc).
fn role_rules(role: Role) -> Vec<Rule> {
    let r = role.name();
    let id = |what: &str| format!("{r}-{what}");
    match role {
        Role::Coordinator => vec![
            ingress(&id("ask"), &["query"], &["ctl/worker/*/*"]),
            ingress(&id("answer"), &ANSWER, &["ctl/coordinator/*"]),
            ingress(&id("token"), &["liveliness_token"], &["coordinator"]),
            ingress(&id("watch"), &WATCH, &["worker/*", "client/*"]),
        ],
        Role::Worker => vec![
            ingress(
                &id("ask"),
                &["query"],
                &["ctl/coordinator/report", "data/**", "ctl/client/*/table"],
            ),
            ingress(&id("answer"), &ANSWER, &["ctl/worker/*/*", "data/**"]),
            ingress(&id("token"), &["liveliness_token"], &["worker/*"]),
            ingress(&id("watch"), &WATCH, &["coordinator"]),
        ],
        Role::Client => vec![
            ingress(
                &id("ask"),
                &["query"],
                &[
                    "ctl/coordinator/submit",
                    "ctl/coordinator/events",
                    "ctl/coordinator/finish",
                    "ctl/coordinator/status",
                    "ctl/coordinator/profile",
                    "ctl/worker/*/state",
                    "data/**",
                ],
            ),
            ingress(&id("answer"), &ANSWER, &["ctl/client/*/table"]),
            ingress(&id("token"), &["liveliness_token"], &["client/*"]),
        ],
    }
}

/// The `access_control` section of every session of `cluster`.
pub fn access_control(cluster: &ClusterId, members: &Members) -> Value {
    let prefix = format!("ffq/{cluster}");
    let rule_json = |rule: &Rule| {
        let keys: Vec<String> = rule.keys.iter().map(|k| format!("{prefix}/{k}")).collect();
        json!({
            "id": rule.id,
            "messages": rule.messages,
            "flows": [rule.flow],
            "permission": "allow",
            "key_exprs": keys,
        })
    };
    let receive = Rule {
        id: "member-receive".into(),
        flow: "egress",
        messages: ALL_MESSAGES.to_vec(),
        keys: vec!["**"],
    };
    let mut rules = vec![rule_json(&receive)];
    let mut subjects = Vec::new();
    let mut policies = Vec::new();
    for role in Role::ALL {
        let own = role_rules(role);
        rules.extend(own.iter().map(rule_json));
        let subject = format!("{role}s");
        subjects.push(json!({ "id": subject, "cert_common_names": members.of(role) }));
        let mut rule_ids = vec![receive.id.clone()];
        rule_ids.extend(own.into_iter().map(|r| r.id));
        policies.push(json!({
            "id": format!("{role}-policy"),
            "rules": rule_ids,
            "subjects": [subject],
        }));
    }
    json!({
        "enabled": true,
        "default_permission": "deny",
        "rules": rules,
        "subjects": subjects,
        "policies": policies,
    })
}
