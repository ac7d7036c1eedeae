#ifndef CKETENPOST_FUZZ_DRIVER_H
#define CKETENPOST_FUZZ_DRIVER_H

#include <stddef.h>
#include <stdint.h>

/// The per-input callback libFuzzer calls (LLVMFuzzerTestOneInput's signature).
typedef int (*ketenpost_fuzz_callback)(const uint8_t *data, size_t size);

/// 1 when this executable was linked with libFuzzer (`-sanitize=fuzzer`), 0 otherwise.
int ketenpost_fuzz_linked(void);

/// Runs libFuzzer's driver (flags and corpus directories from argc/argv) with `callback`, and
/// returns its exit status; returns -1 when libFuzzer is not linked in.
int ketenpost_fuzz_run_driver(int *argc, char ***argv, ketenpost_fuzz_callback callback);

#endif
