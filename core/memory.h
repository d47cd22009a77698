// Process-wide allocator settings for the command-line tool.
#pragma once

namespace blindfold {

/// Makes glibc malloc keep freed memory for reuse instead of handing it back
/// to the kernel: large blocks (up to 32 MiB, glibc's limit) come from the heap rather than
/// from a fresh mmap, and the heap is not trimmed until 1 GiB lies free.
///
/// Why: the engines allocate and free vectors of megabytes per layer (MPC
/// shares at batch 64, im2col buffers, ciphertexts). With glibc's defaults
/// each of them is a new mapping whose pages fault in, zero-filled, on first
/// touch; on this machine class that was a fifth of the mpc3 LeNet batch-64
/// online time (253 -> 198 ms, docs/BENCHMARKS.md). The cost: the resident
/// size stays near its peak after a large query. Call once at start-up,
/// before threads are started; a no-op on other C libraries.
void tune_allocator() noexcept;

}  // namespace blindfold
