//go:build linux && cgo

package main

/*
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

// keepMallocHeap has glibc keep up to 16 MiB free at the top of each malloc heap instead of handing
// it back to the kernel at every free (the default threshold is 128 KiB and adapts), and pad each
// growth by 1 MiB.
static int keepMallocHeap(void) {
#if defined(__GLIBC__)
	return mallopt(M_TRIM_THRESHOLD, 16 << 20) && mallopt(M_TOP_PAD, 1 << 20);
#else
	return 0;
#endif
}
*/
import "C"

import "os"

// mallocDefaults tunes the C allocator that SQLite allocates from. A read connection of SQLite drops
// its whole page cache whenever another connection has committed since its last read (WAL mode), and
// under load the writer commits every few milliseconds: so the readers free and allocate their page
// buffers all the time, and glibc, trimming its heaps at each free, gave the memory back to the
// kernel (madvise) and faulted it in again. With the delivery benchmark's 4 KiB end-to-end run
// (perf stat -e syscalls:sys_enter_madvise,page-faults on the gateway for 4 s): 7,629 madvise calls
// and 60,432 page faults before, 2,171 and 21,133 after. An environment that tunes glibc's malloc
// itself (GLIBC_TUNABLES, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_) is left alone. Reports whether the
// settings were made.
func mallocDefaults() bool {
	for _, v := range []string{"GLIBC_TUNABLES", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"} {
		if os.Getenv(v) != "" {
			return false
		}
	}
	return C.keepMallocHeap() == 1
}
