//! The crash switch of the crash-test processes (`examples/*.rs`): `<VAR>=<fail point>@<n>`
//! sends the process SIGKILL the n-th time it reaches the fail point;
//! `<VAR>=<fail point>@<n>:stop` sends it SIGSTOP instead (a paused instance, resumed by the
//! test with SIGCONT). Fail points exist with the runtime's `failpoints` feature.

use std::sync::atomic::{AtomicU32, Ordering};

/// Arms the fail point `var` names, if it is set.
pub fn arm(var: &str) -> Result<(), String> {
    let Ok(spec) = std::env::var(var) else {
        return Ok(());
    };
    let (point, rest) = spec
        .split_once('@')
        .ok_or_else(|| format!("{var} `{spec}`: expected <fail point>@<n>[:stop]"))?;
    let (count, signal) = match rest.split_once(':') {
        Some((count, "stop")) => (count, "-STOP"),
        _ => (rest, "-KILL"),
    };
    let target: u32 = count
        .parse()
        .map_err(|_| format!("{var} `{spec}`: `{count}` is not a count"))?;
    let reached = AtomicU32::new(0);
    let point_name = point.to_owned();
    fail::cfg_callback(point, move || {
        if reached.fetch_add(1, Ordering::SeqCst) + 1 != target {
            return;
        }
        eprintln!("crash point {point_name} reached; sending {signal}");
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("kill")
            .args([signal, &pid])
            .status();
        if signal == "-KILL" {
            // The signal is on its way: nothing after this point runs.
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    })
}
