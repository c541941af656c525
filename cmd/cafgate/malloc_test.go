//go:build linux && cgo

package main

import "testing"

// TestMallocDefaults: glibc takes the allocator settings (on a C library without mallopt it reports
// false, and this test is the place that says so), unless the environment tunes malloc itself.
func TestMallocDefaults(t *testing.T) {
	for _, v := range []string{"GLIBC_TUNABLES", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"} {
		t.Setenv(v, "")
	}
	if !mallocDefaults() {
		t.Fatal("mallopt refused M_TRIM_THRESHOLD or M_TOP_PAD (not glibc?)")
	}
	t.Setenv("MALLOC_TRIM_THRESHOLD_", "131072")
	if mallocDefaults() {
		t.Fatal("the settings were made over MALLOC_TRIM_THRESHOLD_ from the environment")
	}
}
