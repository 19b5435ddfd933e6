//! The polling schedule in paused time: passes come once per interval (within the jitter),
//! back off exponentially while the system is down, up to the cap, and return to the interval
//! after the first pass that reaches it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use yimen_hub::sync::poll::{Schedule, drive};

#[tokio::test(start_paused = true)]
async fn passes_follow_the_interval_and_back_off_while_down() {
    let start = Instant::now();
    let times: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let stop = CancellationToken::new();
    // Down for passes 3..=6, up otherwise.
    let schedule = Schedule::new(Duration::from_secs(60), 0.1, Duration::from_secs(480));
    let task = {
        let times = times.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            drive(schedule, &stop, || {
                let times = times.clone();
                async move {
                    let mut times = times.lock().unwrap();
                    times.push(start.elapsed());
                    let n = times.len();
                    if (3..=6).contains(&n) {
                        Err("down".to_owned())
                    } else {
                        Ok(())
                    }
                }
            })
            .await
        })
    };
    // Paused time auto-advances to the next timer, so every sleep of the schedule ends at
    // exactly its deadline while the test sleeps past them all.
    tokio::time::sleep(Duration::from_secs(2400)).await;
    stop.cancel();
    let passes = task.await.unwrap();
    let times = times.lock().unwrap().clone();
    assert_eq!(passes as usize, times.len());
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    assert!(
        times[0] < Duration::from_secs(60),
        "first pass within one interval"
    );
    // Up: 60 s ± 10 %; after the k-th failure in a row min(60·2^k, 480) s ± 10 %.
    let expected = [60.0, 60.0, 120.0, 240.0, 480.0, 480.0, 60.0, 60.0];
    for (gap, want) in gaps.iter().zip(expected) {
        assert!(
            (gap - want).abs() <= want * 0.1 + 10.0,
            "gap {gap} s, expected about {want} s; all gaps {gaps:?}"
        );
    }
    assert!(gaps.len() >= expected.len(), "{gaps:?}");
}
