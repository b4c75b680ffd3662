//! `memcpy` and `memmove`, small.
//!
//! Written by hand for size: compiler-builtins' versions (weak symbols,
//! which these replace) are tuned for speed with word-wise and unrolled
//! paths, 2.3 KiB of flash together; these byte loops are about 80 bytes.
//! The firmware copies at most a frame (1.5 KiB) at a time, so the speed
//! lost is microseconds per frame.
//!
//! Two traps, avoided: LLVM recognises a plain copy loop and turns it into
//! a call to `memcpy`, and on Arm it lowers every `memcpy` call to
//! `__aeabi_memcpy`; either would make these functions call themselves.
//! So the loops live in helpers with ordinary names, and their byte
//! accesses are volatile, which no pass turns into a library call.
#![allow(unsafe_code)]

/// Copies `n` bytes upwards (first byte first).
///
/// # Safety
///
/// `src` is readable and `dest` writable for `n` bytes; if they overlap,
/// `dest` is at or below `src`.
#[inline(never)]
unsafe fn copy_up(dest: *mut u8, src: *const u8, n: usize) {
    let mut i = 0;
    while i < n {
        // SAFETY: `i < n`, within both regions by the caller's contract.
        unsafe { dest.add(i).write_volatile(src.add(i).read_volatile()) };
        i += 1;
    }
}

/// Copies `n` bytes downwards (last byte first).
///
/// # Safety
///
/// `src` is readable and `dest` writable for `n` bytes; if they overlap,
/// `dest` is above `src`.
#[inline(never)]
unsafe fn copy_down(dest: *mut u8, src: *const u8, n: usize) {
    let mut i = n;
    while i > 0 {
        i -= 1;
        // SAFETY: `i < n`, within both regions by the caller's contract.
        unsafe { dest.add(i).write_volatile(src.add(i).read_volatile()) };
    }
}

/// Copies `n` bytes from `src` to `dest`, which may overlap.
///
/// # Safety
///
/// `src` is readable and `dest` writable for `n` bytes.
unsafe fn copy(dest: *mut u8, src: *const u8, n: usize) {
    if (dest as usize) <= (src as usize) {
        // SAFETY: the caller's contract; `dest` is at or below `src`.
        unsafe { copy_up(dest, src, n) }
    } else {
        // SAFETY: the caller's contract; `dest` is above `src`.
        unsafe { copy_down(dest, src, n) }
    }
}

/// C's `memcpy` (the regions must not overlap; copying as for `memmove`
/// is correct all the same).
///
/// # Safety
///
/// `src` is readable and `dest` writable for `n` bytes.
#[cfg(target_os = "none")]
#[no_mangle]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe { copy(dest, src, n) };
    dest
}

/// C's `memmove`.
///
/// # Safety
///
/// `src` is readable and `dest` writable for `n` bytes.
#[cfg(target_os = "none")]
#[no_mangle]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe { copy(dest, src, n) };
    dest
}

/// Defines Arm EABI copy entry points, which the compiler calls (the `4`
/// and `8` variants promise aligned pointers, which byte loops do not
/// need). compiler-builtins defines them weakly, over its own copies.
macro_rules! aeabi {
    ($($name:ident),+) => {$(
        /// An Arm EABI `memcpy`/`memmove` entry point (no return value).
        ///
        /// # Safety
        ///
        /// `src` is readable and `dest` writable for `n` bytes.
        #[cfg(target_os = "none")]
        #[no_mangle]
        pub unsafe extern "C" fn $name(dest: *mut u8, src: *const u8, n: usize) {
            // SAFETY: the caller's contract.
            unsafe { copy(dest, src, n) }
        }
    )+};
}

aeabi!(
    __aeabi_memcpy,
    __aeabi_memcpy4,
    __aeabi_memcpy8,
    __aeabi_memmove,
    __aeabi_memmove4,
    __aeabi_memmove8
);

#[cfg(test)]
mod tests {
    use super::copy;

    /// `copy` of `n` bytes from `from` to `to` within one buffer, checked
    /// against `copy_within`.
    fn check(from: usize, to: usize, n: usize) {
        let mut want: Vec<u8> = (0..64).collect();
        want.copy_within(from..from + n, to);
        let mut got: Vec<u8> = (0..64).collect();
        let base = got.as_mut_ptr();
        // SAFETY: both ranges lie within the 64-byte buffer.
        unsafe { copy(base.add(to), base.add(from), n) };
        assert_eq!(got, want, "from {from} to {to}, {n} bytes");
    }

    #[test]
    fn copies_apart_and_overlapping_both_ways() {
        for (from, to, n) in [
            (0, 32, 32),
            (32, 0, 32),
            (0, 1, 63),
            (1, 0, 63),
            (10, 13, 20),
            (13, 10, 20),
            (5, 5, 10),
            (7, 40, 0),
        ] {
            check(from, to, n);
        }
    }
}
