//! Panics the library contains on purpose. Some third-party decoders (the `pdb` and `cab`
//! crates) panic on malformed input; the analyzer runs them under `catch_unwind` and turns a
//! panic into an error, as its house rule requires. libFuzzer's panic hook would abort on such a
//! contained panic and report it as a crash, so under the fuzzer [`run`] replaces the hook with
//! one that only remembers the panic; a panic that escapes the library is still a crash, with
//! the remembered message, location and backtrace printed before the abort.

use std::backtrace::Backtrace;
use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    static LAST: RefCell<Option<(String, Backtrace)>> = const { RefCell::new(None) };
}

/// Runs `body` on `data`, aborting (a crash for libFuzzer) only when a panic reaches here.
pub fn run(body: crate::Target, data: &[u8]) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let bt = Backtrace::force_capture();
            LAST.with(|l| *l.borrow_mut() = Some((info.to_string(), bt)));
        }));
    });
    if std::panic::catch_unwind(|| body(data)).is_err() {
        LAST.with(|l| match l.borrow().as_ref() {
            Some((msg, bt)) => eprintln!("panic not contained by the library: {msg}\n{bt}"),
            None => eprintln!("panic not contained by the library"),
        });
        std::process::abort();
    }
}
