//go:build linux && cgo

package main

import "testing"

// TestMallocDefaults: glibc takes the allocator settings (on a C library without mallopt it reports
// false, and this test is the place that says so).
func TestMallocDefaults(t *testing.T) {
	if !mallocDefaults() {
		t.Fatal("mallopt refused M_TRIM_THRESHOLD or M_TOP_PAD (not glibc?)")
	}
}
