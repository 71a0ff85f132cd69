//! Which live worker should run each task: the same answer on every worker that sees the
//! same workers, tasks and current holders, so that workers agree without talking to each
//! other.
//!
//! Every worker runs at most `ceil(tasks / workers)` tasks. A task stays with its current
//! holder while that holder is live and under the bound (so a join or a leave moves only
//! what it must: a joining worker takes the tasks others hold beyond the new bound, a
//! leaving worker's tasks are spread over the others); every other task goes to the live
//! worker under the bound that ranks it highest (rendezvous hashing: each worker's score
//! for a task is a hash of both, so a task's preferred worker does not change when
//! unrelated workers come and go).

use std::collections::{BTreeMap, HashMap};

/// The worker each task should run on, for every task, when at least one worker is live.
/// `holders` names each task's current live holder, if any.
pub fn assign(
    tasks: &[String],
    workers: &[String],
    holders: &HashMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if workers.is_empty() {
        return out;
    }
    let bound = tasks.len().div_ceil(workers.len());
    let mut load: HashMap<&str, usize> = workers.iter().map(|w| (w.as_str(), 0)).collect();
    // In a fixed order that does not favour names: tasks by their own hash.
    let mut order: Vec<&String> = tasks.iter().collect();
    order.sort_by_key(|t| (score(t, ""), t.as_str()));
    let mut unplaced = Vec::new();
    for task in order {
        match holders.get(task.as_str()) {
            Some(holder) if load.get(holder.as_str()).is_some_and(|&held| held < bound) => {
                *load.get_mut(holder.as_str()).expect("checked above") += 1;
                out.insert(task.clone(), holder.clone());
            }
            _ => unplaced.push(task),
        }
    }
    for task in unplaced {
        let best = workers
            .iter()
            .filter(|w| load[w.as_str()] < bound)
            .max_by_key(|w| (score(task, w), w.as_str()))
            .expect("the bound leaves room for every task");
        *load.get_mut(best.as_str()).expect("a worker") += 1;
        out.insert(task.clone(), best.clone());
    }
    out
}

/// The rendezvous score of `worker` for `task`.
fn score(task: &str, worker: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(format!("{task}\0{worker}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    fn loads(a: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for w in a.values() {
            *out.entry(w.clone()).or_default() += 1;
        }
        out
    }

    #[test]
    fn every_task_is_placed_within_the_bound() {
        for (t, w) in [(1, 1), (7, 3), (3, 7), (10, 4), (12, 3)] {
            let (tasks, workers) = (names("v", t), names("w", w));
            let a = assign(&tasks, &workers, &HashMap::new());
            assert_eq!(a.len(), t);
            let bound = t.div_ceil(w);
            assert!(
                loads(&a).values().all(|&n| n <= bound),
                "{t} tasks, {w} workers"
            );
        }
    }

    #[test]
    fn no_workers_place_nothing() {
        assert!(assign(&names("v", 3), &[], &HashMap::new()).is_empty());
    }

    #[test]
    fn a_join_moves_only_a_fair_share() {
        let tasks = names("v", 12);
        let three = names("w", 3);
        let before = assign(&tasks, &three, &HashMap::new());
        let holders: HashMap<String, String> = before.clone().into_iter().collect();
        let four = names("w", 4);
        let after = assign(&tasks, &four, &holders);
        let moved = tasks.iter().filter(|t| before[*t] != after[*t]).count();
        assert_eq!(moved, 3, "12 tasks over 4 workers: the new one takes 3");
        assert!(loads(&after).values().all(|&n| n == 3));
    }

    #[test]
    fn a_leave_moves_only_the_leavers_tasks() {
        let tasks = names("v", 12);
        let four = names("w", 4);
        let before = assign(&tasks, &four, &HashMap::new());
        let holders: HashMap<String, String> = before
            .clone()
            .into_iter()
            .filter(|(_, w)| w != "w3")
            .collect();
        let after = assign(&tasks, &names("w", 3), &holders);
        for t in &tasks {
            if before[t] != "w3" {
                assert_eq!(before[t], after[t], "{t} was not the leaver's");
            }
        }
        assert!(loads(&after).values().all(|&n| n == 4));
    }

    #[test]
    fn every_worker_computes_the_same_answer() {
        let tasks = names("v", 9);
        let workers = names("w", 3);
        let mut shuffled = workers.clone();
        shuffled.reverse();
        let holders = HashMap::from([("v1".to_owned(), "w2".to_owned())]);
        assert_eq!(
            assign(&tasks, &workers, &holders),
            assign(&tasks, &workers, &holders)
        );
        let mut rev_tasks = tasks.clone();
        rev_tasks.reverse();
        assert_eq!(
            assign(&tasks, &workers, &holders),
            assign(&rev_tasks, &shuffled, &holders)
        );
    }

    #[test]
    fn a_holder_that_is_not_live_keeps_nothing() {
        let tasks = names("v", 2);
        let holders = HashMap::from([("v0".to_owned(), "gone".to_owned())]);
        let a = assign(&tasks, &names("w", 2), &holders);
        assert!(a.values().all(|w| w != "gone"));
    }
}
