//! How a worker tells the run it cannot go on. Timely gives a failing worker no way to stop the
//! others: with several workers in a process, a panicking one leaves the rest waiting at the
//! probe forever. So every worker (and any operator that meets an error it must not hide, such
//! as a sink that cannot write) raises a [`Fault`] shared by the workers of the process; the
//! leader stops feeding and committing as soon as it sees one, and the driver ends the run with
//! the first message raised. An operator that raises keeps its capabilities, so the failing
//! epoch can never look complete and nothing of it is committed.

use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Fault {
    first: Mutex<Option<String>>,
}

impl Fault {
    /// Records `message` unless an earlier fault was raised (the first is the cause; later
    /// ones are usually its consequences).
    pub fn raise(&self, message: impl Into<String>) {
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            let message = message.into();
            tracing::error!("{message}");
            *first = Some(message);
        }
    }

    pub fn get(&self) -> Option<String> {
        self.first.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn is_raised(&self) -> bool {
        self.first.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

/// A panic's message, as `catch_unwind` hands it over.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_fault_is_kept_and_panics_are_read() {
        let f = Fault::default();
        assert!(!f.is_raised());
        f.raise("sink: disk full");
        f.raise("later: channel closed");
        assert_eq!(f.get().as_deref(), Some("sink: disk full"));
        let p = std::panic::catch_unwind(|| panic!("bad record {}", 7)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "bad record 7");
        let p = std::panic::catch_unwind(|| std::panic::panic_any(3u8)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "a panic without a message");
    }
}
