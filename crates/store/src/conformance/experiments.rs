//! Experiments: variant counts that add up, and a winner chosen once.

use serde_json::json;

use super::support::{at, in_tx};
use crate::Store;

fn variant_counts_add_up_per_journey_node_and_variant(store: &dyn Store) {
    in_tx(store, |tx| {
        tx.add_experiment_counts("j", "split", "b", 2, 0)?;
        tx.add_experiment_counts("j", "split", "a", 3, 1)?;
        tx.add_experiment_counts("j", "split", "b", 1, 1)?;
        tx.add_experiment_counts("j", "other", "a", 7, 7)?;
        tx.add_experiment_counts("k", "split", "a", 9, 9)
    });
    let counts: Vec<(String, i64, i64)> = in_tx(store, |tx| tx.experiment_counts("j", "split"))
        .into_iter()
        .map(|c| (c.variant, c.entered, c.converted))
        .collect();
    assert_eq!(counts, [("a".to_string(), 3, 1), ("b".to_string(), 3, 1)]);
    let (all, winners) = store.experiments("j").unwrap();
    let all: Vec<(String, String, i64)> = all
        .into_iter()
        .map(|c| (c.node, c.variant, c.entered))
        .collect();
    assert_eq!(
        all,
        [
            ("other".to_string(), "a".to_string(), 7),
            ("split".to_string(), "a".to_string(), 3),
            ("split".to_string(), "b".to_string(), 3),
        ],
        "by node, then variant"
    );
    assert!(winners.is_empty());
    assert!(store.experiments("none").unwrap().0.is_empty());
}

fn the_first_winner_declared_stays(store: &dyn Store) {
    let (before, after) = in_tx(store, |tx| {
        let before = tx.experiment_winner("j", "split")?;
        tx.set_experiment_winner("j", "split", "b", &json!({"p": 0.01}), at(10))?;
        tx.set_experiment_winner("j", "split", "a", &json!({"p": 0.02}), at(20))?;
        Ok((before, tx.experiment_winner("j", "split")?))
    });
    assert_eq!((before, after), (None, Some("b".to_string())));
    assert_eq!(in_tx(store, |tx| tx.experiment_winner("j", "other")), None);
    let (_, winners) = store.experiments("j").unwrap();
    assert_eq!(winners.len(), 1);
    let w = &winners[0];
    assert_eq!(
        (w.node.as_str(), w.winner.as_str(), w.decided_at),
        ("split", "b", at(10))
    );
    assert_eq!(w.verdict, json!({"p": 0.01}));
}

conformance_tests!(
    variant_counts_add_up_per_journey_node_and_variant,
    the_first_winner_declared_stays,
);
