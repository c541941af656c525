//go:build !linux || !cgo

package main

// mallocDefaults: only glibc's allocator is tuned (malloc_linux.go).
func mallocDefaults() bool { return false }
