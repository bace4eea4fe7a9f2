//! Whether the calling thread holds the GIL: Rust threads that log must not wait for the
//! GIL while they might hold a lock a Python thread is waiting for.

/// True when this thread holds the GIL (CPython's `PyGILState_Check`).
pub fn held() -> bool {
    // SAFETY: PyGILState_Check only reads the calling thread's state and may be called from
    // any thread at any time once the interpreter is initialised, which it is for as long
    // as this extension module is loaded.
    unsafe { pyo3::ffi::PyGILState_Check() == 1 }
}
