package api

import (
	"bytes"
	"io"
	"os"
	"runtime"
	"testing"
	"time"
)

// allocated returns the bytes the process allocated while f ran: an upper bound on what f held.
func allocated(f func()) uint64 {
	runtime.GC()
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestUploadMemoryBound: what an upload allocates, from its first byte to its answer (an upper bound on
// what it holds at any moment), stays within what it takes from the memory budget, so the budget
// bounds the memory of all uploads together; and an upload being received holds nothing of the budget
// and no memory that grows with its size.
func TestUploadMemoryBound(t *testing.T) {
	e := newEnv(t, func(l *Limits) { l.MaxUploadBytes, l.MaxBufferedBytes = 64<<20, 1<<30 })
	ref := e.episode(0)
	const size = 4 << 20
	raw := e.benchPackage(size)
	docs := threeDocs()
	docs[0].data = bytes.Repeat([]byte("%PDF binary-ish \x00\x01\x02 content "), size/32)
	form, ct := formBody(t, manifestFor(ref, priya, docs), docs, []string{gwen})
	formBytes := form.Bytes()

	var r *resp
	n := allocated(func() { r = e.uploadRaw(health, priya, raw, nil) })
	if r.status != 201 {
		t.Fatalf("raw upload: %s", r)
	}
	if budget := uint64(memOverhead + rawMemFactor*int64(len(raw))); n > budget && !raceEnabled {
		t.Errorf("a raw upload of %d bytes allocated %d (%.1f per byte), more than the %d it takes from the budget", len(raw), n, float64(n)/float64(len(raw)), budget)
	} else {
		t.Logf("raw upload of %d bytes: allocated %.2f per byte (budget %d per byte)", len(raw), float64(n)/float64(len(raw)), rawMemFactor)
	}
	docBytes := 0
	for _, d := range docs {
		docBytes += len(d.data)
	}
	n = allocated(func() {
		r = e.do(call{method: "POST", path: "/v1/packages", key: e.keys[health], actor: priya, ctype: ct, body: bytes.NewReader(formBytes)})
	})
	if r.status != 201 {
		t.Fatalf("form upload: %s", r)
	}
	if budget := uint64(memOverhead + formMemFactor*int64(docBytes)); n > budget && !raceEnabled {
		t.Errorf("a form upload of %d document bytes allocated %d (%.1f per byte), more than the %d it takes from the budget", docBytes, n, float64(n)/float64(docBytes), budget)
	} else {
		t.Logf("form upload of %d document bytes: allocated %.2f per byte (budget %d per byte)", docBytes, float64(n)/float64(docBytes), formMemFactor)
	}

	// While an upload is being received (here it stops three quarters of the way for a moment), it holds nothing of the
	// budget and its bytes are not in memory.
	big := e.benchPackage(16 << 20)
	pr, pw := io.Pipe()
	paused, resume := make(chan struct{}), make(chan struct{})
	go func() {
		pw.Write(big[:12<<20])
		close(paused)
		<-resume
		pw.Write(big[12<<20:])
		pw.Close()
	}()
	done := make(chan *resp, 1)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	go func() {
		done <- e.do(call{method: "POST", path: "/v1/packages", key: e.keys[health], actor: priya, ctype: "message/rfc822", body: pr})
	}()
	<-paused
	time.Sleep(100 * time.Millisecond) // the server reads what was written
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	if e.h.mem.InUse() != 0 {
		t.Errorf("an upload being received holds %d bytes of the budget", e.h.mem.InUse())
	}
	if grown := int64(during.HeapAlloc) - int64(before.HeapAlloc); grown > 4<<20 {
		t.Errorf("the heap grew by %d bytes while 12 MiB of an upload were received", grown)
	} else {
		t.Logf("heap grew by %d bytes while 12 MiB of an upload were received", grown)
	}
	close(resume)
	if r := <-done; r.status != 201 {
		t.Fatalf("slow upload: %s", r)
	}
	if e.h.mem.InUse() != 0 {
		t.Errorf("upload memory not given back: %d", e.h.mem.InUse())
	}
	// The spool files are gone (they were unlinked at once).
	if ents, err := os.ReadDir(e.spoolDir); err != nil || len(ents) != 0 {
		t.Errorf("spool directory: %v %v", ents, err)
	}
}
