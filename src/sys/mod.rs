//! Process-level primitives: fork, shared-memory heartbeats, process titles, descriptors
//! handed over by number, the signal wakeup pipe, a listener's accept-queue length and a
//! process's proportional memory use.
//!
//! This is the only module allowed to contain `unsafe` (the crate root denies it elsewhere).
//! It knows nothing about HTTP, configuration or workers' logic; it offers small safe
//! functions to the rest of the crate.

#![allow(unsafe_code)]

pub mod fd;
pub mod gil;
pub mod heartbeat;
pub mod metrics;
pub mod process;
pub mod procmem;
pub mod tcp;
pub mod wakeup;

/// An anonymous MAP_SHARED mapping sized for one `T`, zero-filled, shared with every child
/// forked afterwards and never unmapped (the heartbeat and metrics regions).
///
/// # Safety
/// All-zero bytes must be a valid `T` (the regions are made of atomics), and `T`'s
/// alignment must not exceed a page.
pub(crate) unsafe fn map_shared_zeroed<T>() -> std::io::Result<std::ptr::NonNull<T>> {
    let len = std::num::NonZeroUsize::new(std::mem::size_of::<T>().max(1)).expect("non-zero size");
    // SAFETY: an anonymous mapping aliases no existing memory; its pages are zeroed and
    // page-aligned, which the caller guarantees is a valid, well-aligned `T`.
    let ptr = unsafe {
        nix::sys::mman::mmap_anonymous(
            None,
            len,
            nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
            nix::sys::mman::MapFlags::MAP_SHARED,
        )
    }
    .map_err(std::io::Error::from)?;
    Ok(ptr.cast())
}
