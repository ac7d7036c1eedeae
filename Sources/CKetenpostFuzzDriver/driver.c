// libFuzzer's entry point for programs that have their own main(), referenced weakly: a plain
// build (no -sanitize=fuzzer) links without libFuzzer, the symbol stays null, and the
// executable replays inputs instead of fuzzing. Swift cannot test a weak C symbol for null.
#include "CKetenpostFuzzDriver.h"

extern int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size))
    __attribute__((weak));

int ketenpost_fuzz_linked(void) {
    return LLVMFuzzerRunDriver != NULL;
}

int ketenpost_fuzz_run_driver(int *argc, char ***argv, ketenpost_fuzz_callback callback) {
    if (LLVMFuzzerRunDriver == NULL) return -1;
    return LLVMFuzzerRunDriver(argc, argv, callback);
}
